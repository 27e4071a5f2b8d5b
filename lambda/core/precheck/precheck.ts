/**
 * The check before the release signal (docs/configuration.md "Precheck"): which of a target's
 * lines may be sent this cycle, given whether the servers they release mail to answer.
 *
 * - A fixed server (`{"host": ...}`) gates the whole target: it greets with 220, every line is
 *   sent; it does not, none is, and the target is `skipped` with a reason naming the server.
 * - `"mx"` checks each released domain on its own MX set (mx-servers.ts), the hosts in the order
 *   the provider would try them, until one greets with 220. Each ETRN/QSND line is sent only when
 *   its own domain passed; a line withheld shows in the result's `replies` as "not sent: ..." with
 *   no code, as a line that got no reply does. Several domains on one MX host: checked once.
 * - `force` sends everything whatever the check said, and still reports it.
 *
 * Nothing here talks to the provider; the check happens before the claim is taken, so a target
 * whose server is down has spent nothing of its cycle.
 */
import { verbOf } from '../config';
import { DequeueError } from '../errors';
import type { Transcript } from '../ports';
import { silentTranscript } from '../ports';
import type { ReplyRecord } from '../result';
import { peerName } from '../smtp/connection';
import { mxServers, type MxResolver } from './mx-servers';
import type { PrecheckServer } from './precheck-config';
import { providerExchange } from './provider-exchange';
import { releaseLines } from './precheck-config';
import type { DomainCheck, PrecheckReport, ServerCheck } from './precheck-report';
import { checkServer, type ServerCheckOptions } from './server-check';

export interface PrecheckDecision {
  readonly report: PrecheckReport;
  /** The lines to send, in their configured order; empty with `reason` when nothing may go. */
  readonly send: readonly string[];
  /** The lines held back, each as a reply record with no code ("not sent: ..."). */
  readonly withheld: readonly ReplyRecord[];
  /** Set when nothing is sent: why, for the `skipped` result. */
  readonly reason?: string;
}

export interface PrecheckDeps {
  readonly resolveMx?: MxResolver;
  readonly transcript?: Transcript;
  readonly now?: () => number;
  readonly helloName?: string;
  readonly tlsCa?: string;
  /** Added to a timeout on port 25 (Lambda outside a VPC: server-check.ts). */
  readonly port25Hint?: string;
  /** Checks one server; default the real check (server-check.ts). Tests script outcomes here. */
  readonly checkServer?: (options: ServerCheckOptions) => Promise<ServerCheck>;
}

export interface PrecheckTarget {
  readonly name: string;
  /** The provider: left out of the MX set. */
  readonly host: string;
  readonly protocol: string;
  readonly commands: readonly string[];
}

const DOWN = 'the provider could not deliver now';

/** Check the servers `target` releases mail to, and decide which of its lines may be sent. */
export async function precheckRelease(
  target: PrecheckTarget,
  precheck: PrecheckServer | 'mx',
  options: { readonly force?: boolean; readonly deadline?: number; readonly signal?: AbortSignal },
  deps: PrecheckDeps,
): Promise<PrecheckDecision> {
  const transcript = deps.transcript ?? silentTranscript;
  const say = (text: string) => transcript.line(target.name, '*', `precheck: ${text}`);
  const check = deps.checkServer ?? checkServer;
  const tried = new Map<string, Promise<ServerCheck>>();
  const server = (host: string, port: number, tls: PrecheckServer['tls'], timeoutMs: number) => {
    const key = `${host.toLowerCase()}:${port}:${tls}`;
    let done = tried.get(key);
    if (!done) {
      say(`checking ${peerName(host, port)} before the signal`);
      done = check({
        host,
        port,
        tls,
        timeoutMs,
        label: target.name,
        transcript,
        helloName: deps.helloName,
        deadline: options.deadline,
        now: deps.now,
        tlsCa: deps.tlsCa,
        port25Hint: deps.port25Hint,
      }).then((result) => {
        say(`${result.server} ${result.text}`);
        return result;
      });
      tried.set(key, done);
    }
    return done;
  };

  let domains: DomainCheck[];
  if (precheck === 'mx') {
    domains = [];
    const seen = new Set<string>();
    for (const line of releaseLines(target)) {
      const domain = line.domain!;
      if (seen.has(domain)) continue;
      seen.add(domain);
      domains.push(await checkDomain(domain));
    }
  } else {
    const one = await server(
      precheck.host,
      precheck.port,
      precheck.tls,
      precheck.timeoutSeconds * 1000,
    );
    domains = [{ domain: null, passed: one.passed, servers: [one] }];
  }

  async function checkDomain(domain: string): Promise<DomainCheck> {
    if (!deps.resolveMx)
      throw new DequeueError('config', 'precheck "mx" needs an MX resolver; none is plugged in');
    let records: Awaited<ReturnType<MxResolver>>;
    try {
      records = await deps.resolveMx(domain, options.signal);
    } catch (e) {
      const problem = `the MX records of ${domain} could not be looked up: ${(e as Error).message}`;
      say(problem);
      return { domain, passed: false, servers: [], problem };
    }
    const own = await providerExchange(
      records,
      target.host,
      deps.resolveMx.addresses,
      options.signal,
    );
    if (own.note) say(own.note);
    const found = mxServers(domain, records, own.exchange);
    if (!found.hosts) {
      say(found.problem);
      return { domain, passed: false, servers: [], problem: found.problem };
    }
    say(found.note);
    const servers: ServerCheck[] = [];
    for (const host of found.hosts) {
      const result = await server(host, 25, 'none', DEFAULT_MX_TIMEOUT_MS);
      servers.push(result);
      if (result.passed) return { domain, passed: true, servers };
    }
    return { domain, passed: false, servers };
  }

  const report: PrecheckReport = { passed: domains.every((d) => d.passed), domains };
  if (options.force) {
    if (!report.passed) say('failed, but --force sends every line anyway');
    return { report, send: target.commands, withheld: [] };
  }
  if (precheck !== 'mx') {
    if (report.passed) return { report, send: target.commands, withheld: [] };
    const what = target.commands.length ? target.commands.join(' | ') : 'the bare connection';
    return {
      report,
      send: [],
      withheld: [],
      reason: `${describe(domains[0]!)}: ${DOWN}; ${what} not sent`,
    };
  }
  const failed = new Map(domains.filter((d) => !d.passed).map((d) => [d.domain!, d]));
  const lines = releaseLines(target);
  const held = new Map(
    lines.filter((l) => failed.has(l.domain!)).map((l) => [l.command, failed.get(l.domain!)!]),
  );
  const anyPassed = domains.some((d) => d.passed);
  const send = target.commands.filter((c) => (isRelease(c) ? !held.has(c) : anyPassed));
  if (send.length === 0)
    return {
      report,
      send,
      withheld: [],
      reason: `${domains.map(describe).join('; ')}: ${DOWN}; ${target.commands.join(' | ')} not sent`,
    };
  const withheld = [...held].map(([command, d]) => ({
    command,
    code: null,
    text: `not sent: ${describe(d)}: ${DOWN}`,
  }));
  return { report, send, withheld };
}

/** The default wait per MX host (the `"mx"` form has no settings of its own). */
export const DEFAULT_MX_TIMEOUT_MS = 10_000;

function isRelease(command: string): boolean {
  const verb = verbOf(command);
  return verb === 'ETRN' || verb === 'QSND';
}

/** One domain's check in a line: "customer.test: mx1:25 refused the connection, mx2:25 ...". */
export function describe(check: DomainCheck): string {
  const servers = check.servers.map((s) => `${s.server} ${s.text}`).join(', ');
  const what = check.problem ?? servers;
  return check.domain === null ? what : `${check.domain}: ${what}`;
}

/** The whole check in one line, for the status (`lastPrecheck.text`) and the dry run. */
export function precheckText(report: PrecheckReport): string {
  return report.domains.map(describe).join('; ');
}
