/**
 * Flags and usage errors, the same for every command: a mistake on the command line gets one line
 * that says what is wrong (with "did you mean" for a misspelt flag), then one line pointing at the
 * command's --help, and exit status 2. The usage itself is printed only when asked for.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from '../lambda/core/config-issues';

/** A mistake on the command line: exit status 2, nothing done. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Flags = NonNullable<ParseArgsConfig['options']>;

/**
 * Parse `argv` against `flags` (no positional arguments). Every mistake is a UsageError in our own
 * words: node's own messages run to three sentences and suggest `--` tricks nobody needs here.
 */
export function parseFlags<const F extends Flags>(argv: readonly string[], flags: F) {
  const { tokens } = parseArgs({
    args: [...argv],
    options: flags,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  // Each flag again in its `--name=value` form, which strict parsing never finds ambiguous.
  const normal: string[] = [];
  const given = new Set<string>();
  for (const token of tokens) {
    if (token.kind === 'positional')
      throw new UsageError(`unexpected argument "${token.value}": every value follows its flag`);
    if (token.kind === 'option-terminator') continue;
    const flag = Object.hasOwn(flags, token.name) ? flags[token.name] : undefined;
    if (!flag) {
      // `dequeue deliver --version`: known, only not among a command's flags.
      if (token.rawName === '--version')
        throw new UsageError('--version is given alone: dequeue --version');
      const meant = token.rawName.startsWith('--')
        ? didYouMean(token.name, Object.keys(flags))
        : undefined;
      throw new UsageError(
        `unknown option ${token.rawName}${meant ? `: did you mean --${meant}?` : ''}`,
      );
    }
    const name = `--${token.name}`;
    if (flag.type === 'string') {
      // `--config --json`: the next flag is not the value a person meant to give (`-5` may be).
      if (
        token.value === undefined ||
        (!token.inlineValue && /^-(?!\d)/.test(token.value) && token.value !== '-')
      )
        throw new UsageError(`${name} needs a value`);
      // `--state "$STATE"` with the variable unset: no file is not the file a person meant.
      if (token.value === '') throw new UsageError(`${name} needs a value (it was empty)`);
      // `--config a.json --config b.json`: parseArgs keeps the last one without a word, which
      // runs something other than one of the two a person had in mind.
      if (!flag.multiple && given.has(name))
        throw new UsageError(`${name} is given twice: give it once`);
      given.add(name);
      normal.push(`${name}=${token.value}`);
    } else {
      if (token.inlineValue) throw new UsageError(`${name} takes no value`);
      normal.push(name);
    }
  }
  return parseArgs({ args: normal, options: flags, strict: true, allowPositionals: false }).values;
}

/**
 * Write a usage error the way every command does: `<command>: <what is wrong>`, then where the
 * usage is (`helpOf`: the command whose --help has it, when a subcommand shares its parent's).
 * Returns the exit status, 2.
 */
export function usageError(
  io: { readonly stderr: { write(text: string): unknown } },
  command: string,
  message: string,
  helpOf = command,
): number {
  io.stderr.write(`${command}: ${message}\nTry '${helpOf} --help' for the usage.\n`);
  return 2;
}
