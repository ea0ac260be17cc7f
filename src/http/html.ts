import { createHash } from 'node:crypto';
import type { Response } from 'express';

/**
 * Server-rendered HTML without a template engine. Every interpolated value is escaped unless it is
 * markup this module built (a `Html` value), so a ref named `<script>` from a webhook payload can
 * only ever show up as text: escaping is the default, not something each call site remembers.
 */

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function render(value: Value): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new Html(out);
}

const CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#5f6b7a;--line:#dde1e6;
--blue:#1f6feb;--green:#1a7f37;--bad:#cf222e;--warn:#9a6700;--code:#f0f2f5}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#8d96a0;
--line:#30363d;--blue:#4493f8;--green:#3fb950;--bad:#f85149;--warn:#d29922;--code:#0d1117}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;align-items:center;justify-content:space-between;gap:12px;padding:12px 16px;border-bottom:1px solid var(--line);background:var(--card)}
header h1{font-size:18px;margin:0}header h1 a{color:inherit;text-decoration:none}
header .asof{font-size:12px;font-weight:400;color:var(--muted);margin-left:8px}
main{max-width:960px;margin:0 auto;padding:12px}
section.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px;margin:0 0 14px}
h2{font-size:17px;margin:0 0 10px;display:flex;flex-wrap:wrap;align-items:center;gap:8px}
h3{font-size:14px;margin:14px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
a{color:var(--blue)}
.colors{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:10px}
.color{border:1px solid var(--line);border-radius:8px;padding:10px;border-left-width:5px}
.color.c-blue{border-left-color:var(--blue)}.color.c-green{border-left-color:var(--green)}
.color .name{font-weight:600;display:flex;align-items:center;gap:6px;flex-wrap:wrap}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:6px 0 0;font-size:14px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.badge{display:inline-block;font-size:12px;font-weight:600;padding:1px 8px;border-radius:999px;border:1px solid currentColor;white-space:nowrap}
.alert{padding:6px 10px;border:1px solid currentColor;border-radius:6px;margin:8px 0}
.live{color:var(--green)}.ok{color:var(--green)}.bad{color:var(--bad)}.warn{color:var(--warn)}.muted{color:var(--muted)}
.b-blue{color:var(--blue)}.b-green{color:var(--green)}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--code);border:1px solid var(--line);border-radius:8px;padding:10px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;max-height:70vh;margin:0}
table{width:100%;border-collapse:collapse;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.num{text-align:right;white-space:nowrap}
.running{border:1px solid var(--warn);border-radius:8px;padding:8px 10px;margin:10px 0 0}
form.inline{display:inline;margin:0}
.actions{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 0}
button,input{font:inherit}
button{padding:6px 14px;border-radius:6px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button.primary{background:var(--green);border-color:var(--green);color:#fff}
.login{max-width:380px;margin:40px auto}
.login input{width:100%;padding:8px 10px;margin:6px 0 12px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
.error{color:var(--bad);margin:0 0 10px}
@media (max-width:600px){
 main{padding:8px}section.card{padding:12px}
 table.deploys thead{display:none}
 table.deploys tr{display:grid;grid-template-columns:1fr auto;gap:2px 10px;padding:8px 0;border-bottom:1px solid var(--line)}
 table.deploys td{border:0;padding:0}
 table.deploys td:nth-child(2){grid-area:1/2;justify-self:end}
 table.deploys td.num{grid-area:2/2;justify-self:end;color:var(--muted);font-size:13px}
 table.deploys td.when{grid-area:2/1;color:var(--muted);font-size:13px}
}
`;

/** The Content-Security-Policy allows exactly this stylesheet and no script at all. */
const STYLE_HASH = createHash('sha256').update(CSS).digest('base64');
const CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

interface PageOptions {
  title: string;
  body: Html;
  /** Seconds after which the page reloads itself (a deploy in progress), or undefined. */
  refreshS?: number;
  /** The "sign out" button, when a session is in use. */
  logoutAction?: string;
  home: string;
}

export function page(options: PageOptions): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${options.refreshS ? html`<meta http-equiv="refresh" content="${options.refreshS}">` : ''}
<title>${options.title}</title><link rel="icon" href="data:,">
<style>${new Html(CSS)}</style></head>
<body><header><h1><a href="${options.home}">duet</a><span class="asof">${new Date().toISOString().slice(11, 19)} UTC</span></h1>
${options.logoutAction ? html`<form class="inline" method="post" action="${options.logoutAction}"><button type="submit">Sign out</button></form>` : ''}
</header>
<main>${options.body}</main></body></html>
`;
}

export function sendPage(res: Response, status: number, body: Html): void {
  res
    .status(status)
    .set({
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': CSP,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    })
    .send(body.text);
}
