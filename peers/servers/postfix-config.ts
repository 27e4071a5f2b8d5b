/**
 * The private Postfix instance's configuration: the verified recipe of docs/real-servers.md (mail
 * for the relay domains held by the `etrn-only` transport until ETRN, the domains in
 * `fast_flush_domains`), with every path inside the instance's own directory.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** main.cf: `extra` parameters override the recipe's. */
export function mainCf(
  dir: string,
  domains: readonly string[],
  extra: Readonly<Record<string, string>>,
): string {
  const params: Record<string, string> = {
    compatibility_level: '3.6',
    // Not this machine's name: Postfix refuses to deliver to a server that greets with its own name.
    myhostname: `postfix-${randomBytes(3).toString('hex')}.etrn.test`,
    myorigin: '$myhostname',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mydestination: '',
    mynetworks: '127.0.0.0/8',
    relay_domains: domains.join(', '),
    fast_flush_domains: '$relay_domains',
    smtpd_etrn_restrictions: 'permit_mynetworks, reject',
    transport_maps: `hash:${join(dir, 'etc', 'transport')}`,
    defer_transports: 'etrn-only',
    smtp_dns_support_level: 'disabled',
    maillog_file: join(dir, 'postfix.log'),
    // Postfix writes its log only under these prefixes (default: /var and /dev/stdout).
    maillog_file_prefixes: dir,
    // Nothing here is delivered locally; say so instead of falling back to /etc/aliases.
    alias_maps: '',
    alias_database: '',
    local_recipient_maps: '',
    local_transport: 'error:5.1.1 no local delivery in this test instance',
    smtpd_tls_security_level: 'none',
    smtp_tls_security_level: 'none',
    smtpd_peername_lookup: 'no',
    biff: 'no',
    ...extra,
  };
  return `# Written by peers/servers/postfix.ts for one test run.\n${Object.entries(params)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')}\n`;
}

/** master.cf: the services Postfix needs, none chrooted (the queue is a temp dir), plus ours. */
export function masterCf(port: number): string {
  return `# Written by peers/servers/postfix.ts for one test run.
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
etrn-only unix  -       -       n       -       -       smtp
`;
}
