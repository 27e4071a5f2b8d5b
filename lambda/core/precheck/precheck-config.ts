/**
 * `precheck` (docs/configuration.md "Precheck"): the customer's own server that must answer
 * before the release signal is sent, on a target or in the settings for every target.
 *
 *   "precheck": {"host": "mx1.customer.example", "port": 25, "timeoutSeconds": 10, "tls": "none"}
 *   "precheck": "mx"     the MX records of each domain the target releases (ETRN/QSND)
 *   "precheck": false    on a target: no check, whatever the settings say
 *
 * ETRN (RFC 1985 section 3) only asks the provider to start delivering, to the domain's own MX:
 * when that server is down the provider tries, fails and pushes the held mail's next attempt
 * further out on its retry back-off. The check spares that wasted signal. It applies to ETRN and
 * QSND targets and bare connections (and `raw` ones with a fixed host); never to ATRN, where the
 * mail comes to us on the same connection.
 */
import { ConfigError } from '../errors';

/** What the check needs to greet a server over (the greeting is what is checked; RFC 5321 3.1). */
export type PrecheckTls = 'none' | 'required' | 'implicit';

/** One fixed server to check. */
export interface PrecheckServer {
  readonly host: string;
  /** Default 25: the port the provider delivers to. */
  readonly port: number;
  /** The longest wait for the connection, and then for the greeting. Default 10. */
  readonly timeoutSeconds: number;
  /**
   * `none` (default): the 220 greeting is enough. `required`: EHLO and STARTTLS must succeed too
   * (for a provider that delivers only over TLS). `implicit`: TLS from the first byte. The
   * certificate is not verified: a delivering MTA does not verify it either (RFC 7435).
   */
  readonly tls: PrecheckTls;
}

/** The setting as parsed: a server, the MX set, or (on a target) none. */
export type Precheck = PrecheckServer | 'mx' | false;

export const DEFAULT_PRECHECK_PORT = 25;
export const DEFAULT_PRECHECK_TIMEOUT_SECONDS = 10;

/**
 * The verb of a command line, upper-cased: config.ts's verbOf, which this file cannot import
 * (config.ts imports it; the layout test forbids import circles).
 */
function verbOf(command: string): string {
  return command.trimStart().split(/\s+/, 1)[0]!.toUpperCase();
}

/** An ETRN or QSND line and the domain it releases (RFC 1985 section 5: `@` takes subdomains too). */
export interface ReleaseLine {
  readonly command: string;
  /** The domain whose MX receives what the line releases; null for a `#queue` name. */
  readonly domain: string | null;
}

/** The ETRN and QSND lines of a target, each with its domain. */
export function releaseLines(target: {
  readonly protocol: string;
  readonly commands: readonly string[];
}): ReleaseLine[] {
  if (target.protocol !== 'smtp') return [];
  return target.commands
    .filter((c) => ['ETRN', 'QSND'].includes(verbOf(c)))
    .map((command) => {
      const node = command.trim().split(/\s+/)[1] ?? '';
      // RFC 1985 section 5: "#" names a queue, not a domain; "@" asks for the subdomains as well,
      // whose mail goes to the domain's MX like the domain's own.
      if (node.startsWith('#')) return { command, domain: null };
      const domain = node.replace(/^@/, '').replace(/\.$/, '').toLowerCase();
      return { command, domain: domain || null };
    });
}

/** Why `"mx"` cannot be this target's check, or null when it can. */
function mxProblem(target: {
  readonly protocol: string;
  readonly commands: readonly string[];
}): string | null {
  const lines = releaseLines(target);
  if (lines.length === 0)
    return 'needs ETRN or QSND domains to find MX records of; this target releases none: name the server to check ({"host": ...})';
  const queue = lines.find((l) => l.domain === null);
  if (queue)
    return `"${queue.command}" names a queue, not a domain, so it has no MX records: name the server to check ({"host": ...})`;
  return null;
}

/** Targets the check never applies to: ATRN brings the mail to us over the same connection. */
export function isAtrn(target: {
  readonly protocol: string;
  readonly commands: readonly string[];
}): boolean {
  return target.protocol === 'smtp' && target.commands.some((c) => verbOf(c) === 'ATRN');
}

/**
 * A target's own `precheck`, checked against its commands: not for ATRN, and `"mx"` only where
 * every release line names a domain. `field` is the path of the target's `precheck`.
 */
export function checkTargetPrecheck(
  precheck: Precheck | undefined,
  target: { readonly protocol: string; readonly commands: readonly string[] },
  where: string,
  field: string,
): void {
  if (precheck === undefined || precheck === false) return;
  if (isAtrn(target))
    throw new ConfigError(
      where,
      field,
      'ATRN brings the mail to us over the same connection (RFC 2645): there is no server of the customer to check before it; remove "precheck"',
    );
  if (precheck === 'mx') {
    const problem = mxProblem(target);
    if (problem) throw new ConfigError(where, field, `"mx" ${problem}`);
  }
}

/**
 * The check that applies to `target`: its own `precheck`, else the settings' (never for ATRN),
 * or undefined for none. A settings-wide `"mx"` meeting a target without domains is a
 * configuration error of that target, named as `field`.
 */
export function precheckFor(
  target: {
    readonly name: string;
    readonly protocol: string;
    readonly commands: readonly string[];
    readonly precheck?: Precheck;
  },
  settings: { readonly precheck?: PrecheckServer | 'mx' },
  where: string,
  field: string,
): PrecheckServer | 'mx' | undefined {
  if (target.precheck === false) return undefined;
  if (target.precheck !== undefined) return target.precheck;
  if (settings.precheck === undefined || isAtrn(target)) return undefined;
  if (settings.precheck === 'mx') {
    const problem = mxProblem(target);
    if (problem)
      throw new ConfigError(
        where,
        field,
        `settings.precheck is "mx", which ${problem}; or set "precheck": false on this target`,
      );
  }
  return settings.precheck;
}
