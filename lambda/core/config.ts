/**
 * The configuration document (docs/configuration.md), parsed once at the edge.
 *
 * Validation is strict: unknown keys are errors, so a typo such as `everyNthCyle` is reported
 * instead of silently ignored. Every error names where the document came from (a file, an SSM
 * parameter) and the field at fault, as a path like `targets[2].command[0]`.
 *
 * The schemas are config-schema.ts; turning their complaints into errors, config-issues.ts.
 */
import * as v from 'valibot';
import { ConfigError } from './errors';
import { issueErrors, oneOrAll, unknownField } from './config-issues';
import { settingsSchema, targetSchema, type RawTarget } from './config-schema';
import { checkAtrnDomains } from './customer-domains';
import { jsonSyntaxProblem } from './json-position';
import {
  checkTargetPrecheck,
  precheckFor,
  type Precheck,
  type PrecheckServer,
} from './precheck/precheck-config';
import type { TlsMode } from './smtp/tls-policy';

export { TARGET_NAME } from './config-names';
export { DEFAULT_CONCURRENCY, MAX_COMMAND_LENGTH } from './config-schema';
export { didYouMean } from './config-issues';

export type Protocol = 'smtp' | 'raw';
export type { TlsMode } from './smtp/tls-policy';
export type AuthMechanism = 'PLAIN' | 'LOGIN' | 'CRAM-MD5';

export interface Settings {
  /** false pauses every target (each is reported skipped; cycles are still counted). Default true. */
  readonly enabled?: boolean;
  readonly everyNthCycle: number;
  /** Name for EHLO/HELO. Undefined: the session sends an address literal of its own address. */
  readonly helloName?: string;
  readonly concurrency: number;
  /**
   * ETRNs (or QSNDs) sent in one session at most; a target with more uses further sessions in
   * the same cycle. Default 8: sendmail delays every reply after its 8th ETRN in a session.
   */
  readonly maxEtrnPerSession?: number;
  /** After ATRN: limits of the reversed session and an optional relay (docs/odmr.md). */
  readonly mail?: MailSettings;
  /** When a cycle hands its targets to queue-fed workers instead of working them (docs/fan-out.md). */
  readonly fanOut?: FanOutSettings;
  /** The check of every ETRN/QSND and bare-connection target before its signal (precheck/). */
  readonly precheck?: PrecheckServer | 'mx';
}

export interface FanOutSettings {
  /** More due targets than this in one cycle: they go to the workers. Default 100. */
  readonly maxTargetsPerInvocation?: number;
  /** More due ATRN targets than this (each may take minutes): they go to the workers. Default 3. */
  readonly maxAtrnPerInvocation?: number;
  /** A work order still queued this long after the cycle sent it is reported, not worked. Default 3600. */
  readonly expireAfterSeconds?: number;
}

export interface MailSettings {
  /** Advertised as SIZE (RFC 1870); a larger message is refused with 552. Default 50 MiB. */
  readonly maxMessageBytes?: number;
  /** RCPTs per message; more get 452 (RFC 5321 4.5.3.1.10). Default 1000, at least 100. */
  readonly maxRecipients?: number;
  /** Forward each received message to this SMTP host, answering the provider after its 250. */
  readonly relay?: MailRelay;
}

export interface MailRelay {
  readonly host: string;
  /** Default 25. */
  readonly port: number;
  /** Default opportunistic (STARTTLS when offered). */
  readonly tls: TlsMode;
  /** Absent: as the mode says (smtp/tls-policy.ts relayTls: RFC 7435). */
  readonly tlsVerify?: boolean;
  /** The CA certificates (PEM) to verify the relay against instead of the system's. */
  readonly tlsCa?: string;
  /** Bound on each of the relay's replies; default RFC 5321 4.5.3.2 (5 min, 10 after the dot). */
  readonly timeoutSeconds?: number;
}

export interface TargetAuth {
  readonly secretId: string;
  readonly mechanism?: AuthMechanism;
}

/** One target, normalised: defaults applied, `command` always an array. */
export interface Target {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly ehlo: boolean;
  readonly tls: TlsMode;
  readonly tlsVerify: boolean;
  readonly auth?: TargetAuth;
  readonly allowPlaintextAuth: boolean;
  /** Release lines in order; empty = connect only (the connection is the signal). */
  readonly commands: readonly string[];
  /** Undefined: use settings.everyNthCycle. */
  readonly everyNthCycle?: number;
  /** Undefined: 30 s per reply, 600 s for the ATRN reply (RFC 2645 providers may scan first). */
  readonly timeoutSeconds?: number;
  readonly enabled: boolean;
  /** Overrides settings.helloName for this target (an MSP signals for many customers). */
  readonly helloName?: string;
  /**
   * Overrides settings.mail for this target, field by field (mailSettingsFor); `domains`, its
   * own only, is whose mail it receives after a bare ATRN (customer-domains.ts).
   */
  readonly mail?: MailSettings & { readonly domains?: readonly string[] };
  /** The customer's server checked before the signal; overrides settings.precheck (false: none). */
  readonly precheck?: Precheck;
}

export interface ConfigDocument {
  readonly settings: Settings;
  readonly targets: readonly Target[];
}

/** The command's verb, upper-cased: `ETRN`, `ATRN`, ... ('' for an empty command). */
export function verbOf(command: string): string {
  return command.trimStart().split(/\s+/, 1)[0]!.toUpperCase();
}

/** Rules that span fields: checked after the shape is right. `at` prefixes field paths. */
function normaliseTarget(raw: RawTarget, where: string, at: string): Target {
  const field = (name: string) => (at ? `${at}.${name}` : name);
  // Spaces or tabs around a command are trimmed, never sent: RFC 5321 4.1.1 has one SP between
  // verb and argument and none at the ends, and servers differ on "ETRN example.com " (Postfix
  // would look up "example.com " and answer 459). Trimmed rather than refused because such a
  // space is invisible in the file and the intent is plain; refusing would stop the whole run.
  const commands = (typeof raw.command === 'string' ? [raw.command] : raw.command)
    .map((c) => c.replace(/^[ \t]+|[ \t]+$/g, ''))
    .filter((c) => c !== '');
  const verbs = commands.map(verbOf);
  const commandField =
    typeof raw.command === 'string' ? field('command') : (i: number) => `${field('command')}[${i}]`;
  const commandAt = (i: number) =>
    typeof commandField === 'string' ? commandField : commandField(i);

  verbs.forEach((verb, i) => {
    if (
      raw.protocol === 'smtp' &&
      (verb === 'ETRN' || verb === 'QSND') &&
      commands[i]!.trim().split(/\s+/).length < 2
    ) {
      throw new ConfigError(
        where,
        commandAt(i),
        `${verb} needs a node, as in "${verb} example.com" (RFC 1985 section 5)`,
      );
    }
    if (raw.protocol === 'smtp' && verb === 'ATRN' && i !== commands.length - 1) {
      throw new ConfigError(
        where,
        commandAt(i),
        'ATRN must be the last command: the provider turns the connection around after it (RFC 2645)',
      );
    }
    if (
      raw.protocol === 'smtp' &&
      ['QUIT', 'STARTTLS', 'AUTH', 'EHLO', 'HELO', 'DATA'].includes(verb)
    ) {
      throw new ConfigError(
        where,
        commandAt(i),
        `${verb} is sent by dequeue itself when needed; it cannot be a release command`,
      );
    }
  });

  const atrn = raw.protocol === 'smtp' && verbs.includes('ATRN');
  if (atrn && !raw.auth) {
    // RFC 2645 section 5: the provider must authenticate the customer before it turns the
    // connection and hands over anyone's mail; an ATRN without AUTH can only be refused (530).
    throw new ConfigError(
      where,
      field('auth'),
      'ATRN needs "auth": RFC 2645 section 5 requires the client to authenticate (AUTH) before ATRN',
    );
  }
  if (raw.protocol === 'raw') {
    if (raw.auth)
      throw new ConfigError(
        where,
        field('auth'),
        'AUTH needs the smtp protocol; a raw target only sends its line',
      );
    if (raw.tls === 'required')
      throw new ConfigError(
        where,
        field('tls'),
        'STARTTLS needs the smtp protocol: use "implicit" or "none" with raw',
      );
  } else if (!raw.ehlo) {
    if (raw.auth)
      throw new ConfigError(where, field('auth'), 'AUTH needs EHLO (RFC 4954): set "ehlo": true');
    if (raw.tls === 'required')
      throw new ConfigError(
        where,
        field('tls'),
        'STARTTLS needs EHLO (RFC 3207): set "ehlo": true or use "implicit"',
      );
    if (atrn)
      throw new ConfigError(
        where,
        field('ehlo'),
        'ATRN needs EHLO (RFC 2645 section 4): set "ehlo": true',
      );
  }

  // Whose mail it receives after the turn: the command's domains or mail.domains (issue 17).
  if (atrn) {
    const i = verbs.indexOf('ATRN');
    checkAtrnDomains(commands[i]!, raw.mail?.domains, where, commandAt(i), field('mail.domains'));
  }

  checkTargetPrecheck(raw.precheck, { protocol: raw.protocol, commands }, where, field('precheck'));

  const port = raw.port ?? (atrn ? 366 : raw.protocol === 'raw' ? 79 : 25);
  return {
    name: raw.name,
    host: raw.host,
    port,
    protocol: raw.protocol,
    ehlo: raw.protocol === 'smtp' && raw.ehlo,
    tls: raw.protocol === 'raw' && raw.tls === 'opportunistic' ? 'none' : raw.tls,
    tlsVerify: raw.tlsVerify,
    auth: raw.auth,
    allowPlaintextAuth: raw.allowPlaintextAuth,
    commands,
    everyNthCycle: raw.everyNthCycle,
    timeoutSeconds: raw.timeoutSeconds,
    enabled: raw.enabled,
    ...(raw.helloName !== undefined ? { helloName: raw.helloName } : {}),
    ...(raw.mail !== undefined ? { mail: raw.mail } : {}),
    ...(raw.precheck !== undefined ? { precheck: raw.precheck } : {}),
  };
}

/** Every error of one target object (all of its fields at once), or the target. */
function checkTarget(
  input: unknown,
  where: string,
  at: string,
  document?: unknown,
): { target: Target; errors?: undefined } | { errors: ConfigError[] } {
  const parsed = v.safeParse(targetSchema, input);
  if (!parsed.success)
    return { errors: issueErrors(parsed.issues, where, at, targetSchema, document) };
  try {
    return { target: normaliseTarget(parsed.output, where, at) };
  } catch (e) {
    if (e instanceof ConfigError) return { errors: [e] };
    throw e;
  }
}

/**
 * The mail settings one target's ATRN mail is received with: `target.mail` over `settings.mail`,
 * field by field (an MSP's customers each get their own relay and limits). A target's `relay`
 * replaces the settings' relay whole: half of one relay's fields with half of another's would
 * be nobody's server.
 */
export function mailSettingsFor(
  settings: Settings,
  target: Pick<Target, 'mail'>,
): MailSettings | undefined {
  if (!target.mail) return settings.mail;
  return { ...settings.mail, ...target.mail };
}

/** The EHLO/HELO name for a target: its own, else the settings'. */
export function helloNameFor(
  settings: Settings,
  target: Pick<Target, 'helloName'>,
): string | undefined {
  return target.helloName ?? settings.helloName;
}

/** Parse one target object. `where` names its source; `at` is the field prefix (e.g. `targets[3]`). */
export function parseTarget(input: unknown, where: string, at = ''): Target {
  const checked = checkTarget(input, where, at);
  if (checked.errors) throw oneOrAll(checked.errors);
  return checked.target;
}

export function parseSettings(input: unknown, where: string, at = ''): Settings {
  const parsed = v.safeParse(settingsSchema, input ?? {});
  if (!parsed.success) throw oneOrAll(issueErrors(parsed.issues, where, at, settingsSchema));
  return parsed.output;
}

/** The document's shape, where a field put in the wrong object is looked for (config-issues.ts). */
const DOCUMENT_SHAPE = {
  type: 'object',
  entries: { settings: settingsSchema, targets: { type: 'array', item: targetSchema } },
};

/**
 * Parse and validate a whole document: any invalid target is an error for the whole file, and
 * every error is reported at once (a ConfigErrors when there are several).
 */
export function parseConfigDocument(input: unknown, where: string): ConfigDocument {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(where, '', 'must be a JSON object with "settings" and "targets"');
  }
  const doc = input as Record<string, unknown>;
  const errors: ConfigError[] = [];
  for (const key of Object.keys(doc)) {
    if (key === 'settings' || key === 'targets') continue;
    errors.push(
      new ConfigError(where, key, unknownField(key, ['settings', 'targets'], DOCUMENT_SHAPE)),
    );
  }
  let settings: Settings | undefined;
  const parsedSettings = v.safeParse(settingsSchema, doc.settings ?? {});
  if (parsedSettings.success) settings = parsedSettings.output;
  else
    errors.push(
      ...issueErrors(parsedSettings.issues, where, 'settings', settingsSchema, DOCUMENT_SHAPE),
    );
  const targets: Target[] = [];
  if (!Array.isArray(doc.targets)) {
    errors.push(
      new ConfigError(
        where,
        'targets',
        doc.targets === undefined
          ? 'is required: an array of targets'
          : 'must be an array of targets',
      ),
    );
  } else {
    const seen = new Map<string, number>();
    doc.targets.forEach((t, i) => {
      const checked = checkTarget(t, where, `targets[${i}]`, DOCUMENT_SHAPE);
      if (checked.errors) {
        errors.push(...checked.errors);
        return;
      }
      const target = checked.target;
      const earlier = seen.get(target.name);
      if (earlier !== undefined) {
        errors.push(
          new ConfigError(
            where,
            `targets[${i}].name`,
            `"${target.name}" is already the name of targets[${earlier}]; names must be unique`,
          ),
        );
        return;
      }
      seen.set(target.name, i);
      if (settings) {
        // A settings-wide check must fit every target it reaches ("mx" needs domains).
        try {
          precheckFor(target, settings, where, `targets[${i}].precheck`);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          errors.push(e);
          return;
        }
      }
      targets.push(target);
    });
  }
  if (errors.length) throw oneOrAll(errors);
  return { settings: settings!, targets };
}

/**
 * Parse JSON text, turning a syntax error into a ConfigError that names the file and the
 * line:column. The message never quotes the text (it may be a secrets file).
 */
export function parseJsonText(text: string, where: string): unknown {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch {
    const problem = jsonSyntaxProblem(body);
    if (body.trim() === '')
      throw new ConfigError(where, '', 'is empty: it must hold a JSON object');
    throw new ConfigError(
      where,
      '',
      problem
        ? `is not valid JSON: line ${problem.line}, column ${problem.column}: ${problem.problem}`
        : 'is not valid JSON',
    );
  }
}
