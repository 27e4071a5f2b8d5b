/** `dequeue config push | pull | diff`: flags, usage, usage errors (exit status 2). */
import { didYouMean } from '../../lambda/core/config-issues';
import { normalisePrefix } from '../../lambda/adapters/ssm-config';
import { DEFAULT_SECRET_PREFIX, DEFAULT_SSM_PREFIX } from '../../lambda/default-prefixes';
import { SECRET_PREFIX } from '../../lib/prefix-rules';
import { parseFlags, UsageError } from '../usage';

export const CONFIG_USAGE = `Usage:
  dequeue config push --config FILE [--prefix ${DEFAULT_SSM_PREFIX}] [--secret-prefix ${DEFAULT_SECRET_PREFIX}]
                      [--secure] [--prune] [--dry-run] [--json]
  dequeue config pull [--prefix ${DEFAULT_SSM_PREFIX}] [--out FILE]
  dequeue config diff --config FILE [--prefix ${DEFAULT_SSM_PREFIX}] [--secret-prefix ${DEFAULT_SECRET_PREFIX}]

The configuration document in SSM Parameter Store, as the deployed function reads it:
<prefix>/settings and one <prefix>/targets/<name> per target. AWS access follows the SDK's
usual chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL). Secrets are never pushed: a target
names its credentials with auth.secretId only.

  push   validate the whole file as a run does (nothing is written when anything is invalid),
         then write the settings and every target whose parameter is new or different
  pull   the deployed document as one file (stdout without --out)
  diff   what a push would change: added, changed (field by field), removed

  --config FILE    the configuration document
  --prefix PATH    the SSM path (default ${DEFAULT_SSM_PREFIX}; the stack's ssmPrefix)
  --secret-prefix P
                   the names of the secrets the function may read (default ${DEFAULT_SECRET_PREFIX}; the
                   stack's secretPrefix): an auth.secretId outside it is refused, as the
                   function would refuse it
  --secure         write SecureString parameters (without it, new ones are String and existing
                   SecureStrings stay SecureString)
  --prune          delete target parameters the file does not name
  --dry-run        print what would be written and deleted; write nothing
  --json           one JSON object per parameter per line on stdout
  --out FILE       where pull writes the document (- or none: stdout)
  -h, --help       this text

Exit status: push 0 done, 1 an SSM call failed part-way (what was written is listed), 2 usage
or an invalid file (nothing written); pull 0 written, 1 written but some deployed parameter is
invalid (named on stderr), 2 usage, SSM unreadable, nothing deployed under --prefix or --out
not writable (nothing written); diff 0 no difference, 1 differences, 2 usage, an invalid file
or SSM unreadable.`;

export type ConfigOptions =
  | {
      readonly verb: 'push';
      readonly config: string;
      readonly prefix: string;
      readonly secretPrefix: string;
      readonly secure: boolean;
      readonly prune: boolean;
      readonly dryRun: boolean;
      readonly json: boolean;
    }
  | { readonly verb: 'pull'; readonly prefix: string; readonly out?: string }
  | {
      readonly verb: 'diff';
      readonly config: string;
      readonly prefix: string;
      readonly secretPrefix: string;
    };

const ALLOWED: Record<ConfigOptions['verb'], readonly string[]> = {
  push: ['config', 'prefix', 'secret-prefix', 'secure', 'prune', 'dry-run', 'json'],
  pull: ['prefix', 'out'],
  diff: ['config', 'prefix', 'secret-prefix'],
};

export function parseConfigArgs(argv: readonly string[]): ConfigOptions | 'help' {
  const [verb, ...rest] = argv;
  if (verb === '--help' || verb === '-h' || verb === 'help') return 'help';
  if (verb !== 'push' && verb !== 'pull' && verb !== 'diff') {
    const meant = verb === undefined ? undefined : didYouMean(verb, ['push', 'pull', 'diff']);
    throw new UsageError(
      verb === undefined
        ? 'say push, pull or diff'
        : verb.startsWith('-')
          ? `say push, pull or diff before ${verb}`
          : `unknown config command "${verb}": ${meant ? `did you mean ${meant}?` : 'say push, pull or diff'}`,
    );
  }
  const values = parseFlags(rest, {
    config: { type: 'string' },
    prefix: { type: 'string' },
    'secret-prefix': { type: 'string' },
    out: { type: 'string' },
    secure: { type: 'boolean' },
    prune: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  for (const flag of Object.keys(values)) {
    if (!ALLOWED[verb].includes(flag))
      throw new UsageError(`--${flag} is not an option of ${verb}`);
  }
  let prefix: string;
  try {
    prefix = normalisePrefix(values.prefix ?? DEFAULT_SSM_PREFIX);
  } catch {
    throw new UsageError(
      `--prefix ${values.prefix}: must be an SSM parameter path such as ${DEFAULT_SSM_PREFIX}`,
    );
  }
  // `--out -` is stdout, as for most tools; a file named "-" would surprise more than it helps.
  if (verb === 'pull') return { verb, prefix, out: values.out === '-' ? undefined : values.out };
  if (!values.config) throw new UsageError('--config FILE is required');
  const secretPrefix = values['secret-prefix'] ?? DEFAULT_SECRET_PREFIX;
  if (!SECRET_PREFIX.pattern.test(secretPrefix))
    throw new UsageError(`--secret-prefix ${secretPrefix}: must be ${SECRET_PREFIX.expected}`);
  if (verb === 'diff') return { verb, config: values.config, prefix, secretPrefix };
  return {
    verb,
    config: values.config,
    prefix,
    secretPrefix,
    secure: values.secure ?? false,
    prune: values.prune ?? false,
    dryRun: values['dry-run'] ?? false,
    json: values.json ?? false,
  };
}
