/**
 * The configuration document's shape, as valibot schemas: each field's type, range and default.
 * Rules that span fields (ATRN needs AUTH, STARTTLS needs EHLO, ...) are config.ts's
 * normaliseTarget; how a schema's complaint becomes an error naming the field is config-issues.ts.
 *
 * valibot is the schema library: it is tree-shakable, so the Lambda bundle carries only the
 * validators used here (a few KB), where zod would bring its whole runtime.
 */
import { isIP } from 'node:net';
import * as v from 'valibot';
import {
  DEFAULT_PRECHECK_PORT,
  DEFAULT_PRECHECK_TIMEOUT_SECONDS,
} from './precheck/precheck-config';
import { caBundleProblem } from './smtp/tls-policy';
import { isHost, TARGET_NAME } from './config-names';

export const DEFAULT_CONCURRENCY = 10;
/** RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF. */
export const MAX_COMMAND_LENGTH = 510;

export const integer = (min: number, max: number) =>
  v.pipe(
    v.number('must be a number'),
    v.integer('must be an integer'),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  );

export const commandLine = v.pipe(
  v.string('must be a string'),
  v.check((s) => !/[\r\n\0]/.test(s), 'must not contain CR, LF or NUL: each command is one line'),
  v.maxLength(
    MAX_COMMAND_LENGTH,
    `must be at most ${MAX_COMMAND_LENGTH} characters (RFC 5321 4.5.3.1.4)`,
  ),
);

export const helloNameSchema = v.pipe(
  v.string('must be a string'),
  v.check(
    (s) => isHost(s) || /^\[[0-9A-Fa-f.:]+\]$/.test(s),
    'must be a host name or an address literal such as [192.0.2.1]',
  ),
);

/**
 * `mail.relay`: the customer's server the received mail is forwarded to. Its TLS is the same
 * policy as `deliver --tls` (smtp/tls-policy.ts): `tlsVerify` absent means "as the mode says"
 * (RFC 7435: opportunistic does not verify, required and implicit do), `tlsCa` the CA (PEM) to
 * verify against instead of the system's.
 */
function relaySchema() {
  const tls = v.optional(
    v.picklist(
      ['none', 'opportunistic', 'required', 'implicit'],
      'must be none, opportunistic, required or implicit',
    ),
    'opportunistic',
  );
  return v.pipe(
    v.strictObject({
      host: v.pipe(
        v.string('must be a string'),
        v.check(isHost, 'must be a host name, an IPv4 or an IPv6 address'),
      ),
      port: v.optional(integer(1, 65535), 25),
      tls,
      tlsVerify: v.optional(v.boolean('must be true or false')),
      tlsCa: v.optional(
        v.pipe(
          v.string('must be a string: the CA certificates in PEM'),
          v.check(
            (pem) => caBundleProblem(pem) === null,
            (issue) => `${caBundleProblem(String(issue.input))}`,
          ),
        ),
      ),
      timeoutSeconds: v.optional(
        v.pipe(
          v.number('must be a number'),
          v.gtValue(0, 'must be more than 0'),
          v.maxValue(3600, 'must be at most 3600'),
        ),
      ),
    }),
    v.forward(
      v.partialCheck(
        [['tls'], ['tlsVerify'], ['tlsCa']],
        (r) => r.tls !== 'none' || (r.tlsVerify !== true && r.tlsCa === undefined),
        'there is no certificate to verify with "tls": "none"',
      ),
      ['tls'],
    ),
    v.forward(
      v.partialCheck(
        [['tlsVerify'], ['tlsCa']],
        (r) => r.tlsCa === undefined || r.tlsVerify !== false,
        'a CA is for verifying the certificate, and "tlsVerify": false says not to',
      ),
      ['tlsCa'],
    ),
  );
}

export const mailSchema = v.strictObject({
  maxMessageBytes: v.optional(integer(1024, 10 * 1024 ** 3)),
  // RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
  maxRecipients: v.optional(integer(100, 100_000)),
  relay: v.optional(relaySchema()),
});

/** A domain name (not an address): whose mail a target receives after ATRN. */
const domainName = v.pipe(
  v.string('must be a string'),
  v.check((s) => isIP(s) === 0 && isHost(s), 'must be a domain name, such as example.com'),
);

/**
 * A target's `mail`: the settings' fields, and `domains`, whose mail the customer receives after
 * ATRN (customer-domains.ts). Per target only: whose mail it is differs with each customer.
 */
export const targetMailSchema = v.strictObject({
  ...mailSchema.entries,
  domains: v.optional(
    v.pipe(
      v.array(domainName, 'must be an array of domain names'),
      v.minLength(1, 'must list at least one domain'),
      v.maxLength(1000, 'must list at most 1000 domains'),
    ),
  ),
});

/** `precheck` (precheck/precheck-config.ts): the customer's server checked before the signal. */
const precheckServerSchema = v.strictObject({
  host: v.pipe(
    v.string('must be a string'),
    v.check(isHost, 'must be a host name, an IPv4 or an IPv6 address'),
  ),
  port: v.optional(integer(1, 65535), DEFAULT_PRECHECK_PORT),
  timeoutSeconds: v.optional(
    v.pipe(
      v.number('must be a number'),
      v.gtValue(0, 'must be more than 0'),
      v.maxValue(300, 'must be at most 300'),
    ),
    DEFAULT_PRECHECK_TIMEOUT_SECONDS,
  ),
  tls: v.optional(
    v.picklist(['none', 'required', 'implicit'], 'must be none, required or implicit'),
    'none',
  ),
});

const FORMS = 'must be "mx", false, or an object {"host", "port", "timeoutSeconds", "tls"}';
const SETTINGS_FORMS = 'must be "mx" or an object {"host", "port", "timeoutSeconds", "tls"}';
const isObject = (input: unknown) =>
  typeof input === 'object' && input !== null && !Array.isArray(input);

/**
 * A target's `precheck`: a server, "mx", or false (no check even when the settings have one). An
 * object is checked field by field (so an error names `precheck.port`, not the whole union).
 */
export const targetPrecheckSchema = v.lazy((input) =>
  isObject(input)
    ? precheckServerSchema
    : v.union([v.literal('mx', FORMS), v.literal(false, FORMS)], FORMS),
);

/** `settings.precheck`: the check of every target that does not say otherwise. */
export const settingsPrecheckSchema = v.lazy((input) =>
  isObject(input) ? precheckServerSchema : v.literal('mx', SETTINGS_FORMS),
);

export const settingsSchema = v.strictObject({
  // Absent means true: parsed settings stay as they were for every document written before it.
  enabled: v.optional(v.boolean('must be true or false')),
  everyNthCycle: v.optional(integer(0, 1_000_000), 0),
  helloName: v.optional(helloNameSchema),
  concurrency: v.optional(integer(1, 1000), DEFAULT_CONCURRENCY),
  maxEtrnPerSession: v.optional(integer(1, 1000)),
  fanOut: v.optional(
    v.strictObject({
      maxTargetsPerInvocation: v.optional(integer(1, 100_000)),
      maxAtrnPerInvocation: v.optional(integer(0, 1000)),
      expireAfterSeconds: v.optional(integer(60, 86_400)),
    }),
  ),
  mail: v.optional(mailSchema),
  precheck: v.optional(settingsPrecheckSchema),
});

export const authSchema = v.strictObject({
  secretId: v.pipe(
    v.string('must be a string'),
    v.minLength(1, 'must not be empty'),
    v.maxLength(512, 'must be at most 512 characters'),
  ),
  mechanism: v.optional(
    v.picklist(['PLAIN', 'LOGIN', 'CRAM-MD5'], 'must be PLAIN, LOGIN or CRAM-MD5'),
  ),
});

export const targetSchema = v.strictObject({
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
  mail: v.optional(targetMailSchema),
  precheck: v.optional(targetPrecheckSchema),
});

export type RawTarget = v.InferOutput<typeof targetSchema>;
