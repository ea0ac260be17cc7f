import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export interface MadeCertificate {
  cert: string;
  key: string;
}

/**
 * A self-signed certificate made with openssl, for `names` (the first is the CN), valid between
 * the two dates (`openssl ca` takes any dates, an expired certificate too; `req -x509` cannot).
 */
export async function makeCertificate(dir: string, label: string, options: { names: string[]; notBefore?: Date; notAfter?: Date }): Promise<MadeCertificate> {
  const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  const notAfter = options.notAfter ?? new Date(Date.now() + 90 * 86_400_000);
  const work = await mkdtemp(join(dir, `${label}-ca-`));
  const cert = join(dir, `${label}.crt`);
  const key = join(dir, `${label}.key`);
  const cnf = join(work, 'ca.cnf');
  await writeFile(
    cnf,
    [
      '[ca]',
      'default_ca = d',
      '[d]',
      `database = ${join(work, 'index.txt')}`,
      `new_certs_dir = ${work}`,
      `serial = ${join(work, 'serial')}`,
      'default_md = sha256',
      'policy = p',
      'copy_extensions = copy',
      'unique_subject = no',
      '[p]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  await writeFile(join(work, 'index.txt'), '');
  await writeFile(join(work, 'serial'), '01\n');
  const csr = join(work, 'req.csr');
  const san = options.names.map((name) => `DNS:${name}`).join(',');
  await execa(
    'openssl',
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr].concat([
      '-subj',
      `/CN=${options.names[0]}`,
      '-addext',
      `subjectAltName=${san}`,
    ]),
  );
  const date = (d: Date) => `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
  await execa(
    'openssl',
    ['ca', '-batch', '-config', cnf, '-selfsign', '-keyfile', key, '-in', csr, '-out', cert, '-notext'].concat([
      '-startdate',
      date(notBefore),
      '-enddate',
      date(notAfter),
    ]),
  );
  await rm(work, { recursive: true, force: true });
  return { cert, key };
}
