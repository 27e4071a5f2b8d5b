/**
 * What a precheck found, as a target's result carries it (`TargetResult.precheck`,
 * docs/outcomes.md). Types only, imported by result.ts: no other module of the core below it.
 */

/** One server checked. */
export interface ServerCheck {
  /** The server, as `host:port`. */
  readonly server: string;
  readonly passed: boolean;
  /** What happened, for a person: "greeted 220", "refused the connection", ... */
  readonly text: string;
}

/** One released domain's check (`domain` null: a fixed server, checked for the whole target). */
export interface DomainCheck {
  readonly domain: string | null;
  readonly passed: boolean;
  /** Each server tried, in order; the last one passed when the domain did. */
  readonly servers: readonly ServerCheck[];
  /** Why no server could be tried (NXDOMAIN, a null MX, a failed lookup, the provider first). */
  readonly problem?: string;
}

/** What the check found. */
export interface PrecheckReport {
  /** Every domain (or the fixed server) passed. */
  readonly passed: boolean;
  readonly domains: readonly DomainCheck[];
}

/** The check as a result reports it. */
export interface PrecheckOutcome extends PrecheckReport {
  /** The whole check in one line: each domain (or the server) and what each server did. */
  readonly text: string;
}
