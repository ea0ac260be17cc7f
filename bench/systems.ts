/**
 * The systems the benchmark compares, by the labels its tables show. The scenarios record them
 * and the report reads them: a module of their own, so neither depends on the other.
 */
export const DUET_SOCKET = 'duet (switch: socket)';
export const DUET_PORT = 'duet (switch: port)';
export const DUET_ACTIVATION = 'duet (switch: socket, socket_activation)';
export const RELOAD = 'nginx -s reload';
/** Section 1's certificate rows: duet's reload-tls, and a bare reload of the same nginx, both over HTTPS. */
export const DUET_TLS = 'duet reload-tls';
export const RELOAD_TLS = 'nginx -s reload (HTTPS)';
export const RELOAD_AMID = 'nginx -s reload amid the same deploy work';
export const NAIVE = 'naive restart';
export const PM2 = 'pm2 reload (cluster)';
/** Section 6's systems besides duet's two: what runs them when the app fails, not how they deploy. */
export const PM2_CLUSTER = 'pm2 (cluster, 2 instances)';
export const NAIVE_SETUP = 'naive (one process, nothing restarts it)';
