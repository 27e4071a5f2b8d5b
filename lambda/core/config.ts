/**
 * The configuration document (docs/configuration.md), parsed once at the edge.
 *
 * Validation is strict: unknown keys are errors, so a typo such as `everyNthCyle` is reported
 * instead of silently ignored. Every error names where the document came from (a file, an SSM
 * parameter) and the field at fault, as a path like `targets[2].command[0]`.
 *
 * valibot is the schema library: it is tree-shakable, so the Lambda bundle carries only the
 * validators used here (a few KB), where zod would bring its whole runtime.
 */
import { isIP } from 'node:net';
import * as v from 'valibot';
import { ConfigError, ConfigErrors } from './errors';
import { jsonSyntaxProblem } from './json-position';

export type Protocol = 'smtp' | 'raw';
export type TlsMode = 'none' | 'opportunistic' | 'required' | 'implicit';
export type AuthMechanism = 'PLAIN' | 'LOGIN' | 'CRAM-MD5';

export interface Settings {
  /** false pauses every target (each is reported skipped; cycles are still counted). Default true. */
  readonly enabled?: boolean;
  readonly everyNthCycle: number;
  /** Name for EHLO/HELO. Undefined: the session sends an address literal of its own address. */
  readonly helloName?: string;
  readonly concurrency: number;
  /** After ATRN: limits of the reversed session and an optional relay (docs/odmr.md). */
  readonly mail?: MailSettings;
  /** When a cycle hands its targets to queue-fed workers instead of working them (docs/fan-out.md). */
  readonly fanOut?: FanOutSettings;
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
  readonly tlsVerify: boolean;
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
  /** Overrides settings.mail for this target, field by field (mailSettingsFor). */
  readonly mail?: MailSettings;
}

export interface ConfigDocument {
  readonly settings: Settings;
  readonly targets: readonly Target[];
}

export const DEFAULT_CONCURRENCY = 10;
export const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF. */
export const MAX_COMMAND_LENGTH = 510;

const HOST_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

function isHost(value: string): boolean {
  if (isIP(value) !== 0) return true;
  if (value.length > 253) return false;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  return name.length > 0 && name.split('.').every((label) => HOST_LABEL.test(label));
}

/** The command's verb, upper-cased: `ETRN`, `ATRN`, ... ('' for an empty command). */
export function verbOf(command: string): string {
  return command.trimStart().split(/\s+/, 1)[0]!.toUpperCase();
}

const integer = (min: number, max: number) =>
  v.pipe(
    v.number('must be a number'),
    v.integer('must be an integer'),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  );

const commandLine = v.pipe(
  v.string('must be a string'),
  v.check((s) => !/[\r\n\0]/.test(s), 'must not contain CR, LF or NUL: each command is one line'),
  v.maxLength(
    MAX_COMMAND_LENGTH,
    `must be at most ${MAX_COMMAND_LENGTH} characters (RFC 5321 4.5.3.1.4)`,
  ),
);

const helloNameSchema = v.pipe(
  v.string('must be a string'),
  v.check(
    (s) => isHost(s) || /^\[[0-9A-Fa-f.:]+\]$/.test(s),
    'must be a host name or an address literal such as [192.0.2.1]',
  ),
);

const mailSchema = v.strictObject({
  maxMessageBytes: v.optional(integer(1024, 10 * 1024 ** 3)),
  // RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
  maxRecipients: v.optional(integer(100, 100_000)),
  relay: v.optional(
    v.strictObject({
      host: v.pipe(
        v.string('must be a string'),
        v.check(isHost, 'must be a host name, an IPv4 or an IPv6 address'),
      ),
      port: v.optional(integer(1, 65535), 25),
      tls: v.optional(
        v.picklist(
          ['none', 'opportunistic', 'required', 'implicit'],
          'must be none, opportunistic, required or implicit',
        ),
        'opportunistic',
      ),
      tlsVerify: v.optional(v.boolean('must be true or false'), true),
      timeoutSeconds: v.optional(
        v.pipe(
          v.number('must be a number'),
          v.gtValue(0, 'must be more than 0'),
          v.maxValue(3600, 'must be at most 3600'),
        ),
      ),
    }),
  ),
});

const settingsSchema = v.strictObject({
  // Absent means true: parsed settings stay as they were for every document written before it.
  enabled: v.optional(v.boolean('must be true or false')),
  everyNthCycle: v.optional(integer(0, 1_000_000), 0),
  helloName: v.optional(helloNameSchema),
  concurrency: v.optional(integer(1, 1000), DEFAULT_CONCURRENCY),
  fanOut: v.optional(
    v.strictObject({
      maxTargetsPerInvocation: v.optional(integer(1, 100_000)),
      maxAtrnPerInvocation: v.optional(integer(0, 1000)),
      expireAfterSeconds: v.optional(integer(60, 86_400)),
    }),
  ),
  mail: v.optional(mailSchema),
});

const authSchema = v.strictObject({
  secretId: v.pipe(
    v.string('must be a string'),
    v.minLength(1, 'must not be empty'),
    v.maxLength(512, 'must be at most 512 characters'),
  ),
  mechanism: v.optional(
    v.picklist(['PLAIN', 'LOGIN', 'CRAM-MD5'], 'must be PLAIN, LOGIN or CRAM-MD5'),
  ),
});

const targetSchema = v.strictObject({
  name: v.pipe(
    v.string('must be a string'),
    v.regex(TARGET_NAME, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  ),
  host: v.pipe(
    v.string('must be a string'),
    v.check(isHost, 'must be a host name, an IPv4 or an IPv6 address'),
  ),
  port: v.optional(integer(1, 65535)),
  protocol: v.optional(v.picklist(['smtp', 'raw'], 'must be "smtp" or "raw"'), 'smtp'),
  ehlo: v.optional(v.boolean('must be true or false'), true),
  tls: v.optional(
    v.picklist(
      ['none', 'opportunistic', 'required', 'implicit'],
      'must be none, opportunistic, required or implicit',
    ),
    'opportunistic',
  ),
  tlsVerify: v.optional(v.boolean('must be true or false'), true),
  auth: v.optional(authSchema),
  allowPlaintextAuth: v.optional(v.boolean('must be true or false'), false),
  command: v.optional(
    v.union(
      [commandLine, v.array(commandLine, 'must be a string or an array of strings')],
      'must be a string or an array of strings',
    ),
    '',
  ),
  everyNthCycle: v.optional(integer(0, 1_000_000)),
  timeoutSeconds: v.optional(
    v.pipe(
      v.number('must be a number'),
      v.gtValue(0, 'must be more than 0'),
      v.maxValue(3600, 'must be at most 3600'),
    ),
  ),
  enabled: v.optional(v.boolean('must be true or false'), true),
  helloName: v.optional(helloNameSchema),
  mail: v.optional(mailSchema),
});

type RawTarget = v.InferOutput<typeof targetSchema>;

function fieldPath(issue: v.BaseIssue<unknown>, prefix: string): string {
  const path = issue.path ?? [];
  let out = prefix;
  for (const item of path) {
    const key = (item as { key: unknown }).key;
    out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** The schema at `keys` below `schema` (through optional, array and object wrappers), if any. */
function schemaAt(schema: unknown, keys: readonly unknown[]): unknown {
  let at = schema as
    | { type?: string; wrapped?: unknown; item?: unknown; entries?: Record<string, unknown> }
    | undefined;
  const unwrap = () => {
    while (
      at &&
      (at.type === 'optional' ||
        at.type === 'nullable' ||
        at.type === 'nullish' ||
        at.type === 'exact_optional')
    )
      at = at.wrapped as typeof at;
  };
  unwrap();
  for (const key of keys) {
    if (!at) return undefined;
    if (typeof key === 'number') at = at.type === 'array' ? (at.item as typeof at) : undefined;
    else at = at.entries ? (at.entries[String(key)] as typeof at) : undefined;
    unwrap();
  }
  return at;
}

/** A key within two edits of a known one (and not known itself) is almost certainly a typo. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.max(1, Math.floor(key.length / 3)));
  for (const candidate of known) {
    const d = editDistance(lower, candidate.toLowerCase());
    if (d <= bestDistance) {
      best = candidate;
      bestDistance = d - 1;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Every issue valibot found, one per field (the first said about it), as ConfigErrors. */
function issueErrors(
  issues: readonly v.BaseIssue<unknown>[],
  where: string,
  prefix: string,
  schema: unknown,
): ConfigError[] {
  const byField = new Map<string, ConfigError>();
  for (const issue of issues) {
    const field = fieldPath(issue, prefix);
    if (byField.has(field)) continue;
    let message = issue.message;
    // valibot reports an unknown key of a strict object as "Invalid key"; say which key it was.
    if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'never') {
      const keys = (issue.path ?? []).map((item) => (item as { key: unknown }).key);
      const parent = schemaAt(schema, keys.slice(0, -1)) as
        | { entries?: Record<string, unknown> }
        | undefined;
      const meant = parent?.entries
        ? didYouMean(String(keys.at(-1)), Object.keys(parent.entries))
        : undefined;
      message = meant ? `is not a known field: did you mean "${meant}"?` : 'is not a known field';
    } else if (issue.received === 'undefined' && issue.type !== 'check') {
      message = 'is required';
    }
    byField.set(field, new ConfigError(where, field, message));
  }
  return [...byField.values()];
}

/** One error as itself, several as one ConfigErrors that lists them all. */
function oneOrAll(errors: readonly ConfigError[]): ConfigError {
  return errors.length === 1 ? errors[0]! : new ConfigErrors(errors);
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
  };
}

/** Every error of one target object (all of its fields at once), or the target. */
function checkTarget(
  input: unknown,
  where: string,
  at: string,
): { target: Target; errors?: undefined } | { errors: ConfigError[] } {
  const parsed = v.safeParse(targetSchema, input);
  if (!parsed.success) return { errors: issueErrors(parsed.issues, where, at, targetSchema) };
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
    const meant = didYouMean(key, ['settings', 'targets']);
    errors.push(
      new ConfigError(
        where,
        key,
        meant ? `is not a known field: did you mean "${meant}"?` : 'is not a known field',
      ),
    );
  }
  let settings: Settings | undefined;
  const parsedSettings = v.safeParse(settingsSchema, doc.settings ?? {});
  if (parsedSettings.success) settings = parsedSettings.output;
  else errors.push(...issueErrors(parsedSettings.issues, where, 'settings', settingsSchema));
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
      const checked = checkTarget(t, where, `targets[${i}]`);
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
