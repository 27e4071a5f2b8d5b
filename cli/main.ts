/**
 * The CLI's front door: `dequeue --config FILE ...` runs a release cycle; the operating commands
 * (`config`, `status`, `deliver`) are words before the flags; `help [COMMAND]` and `--version`
 * answer here. Each command lives in cli/commands/ and resolves to its exit status: 0 done, 1 a
 * target or message failed, 2 usage or configuration.
 */
import { didYouMean } from '../lambda/core/config-issues';
import { processIo, type CliIo } from './io';
import { versionLine } from './version';
import { usageError } from './usage';

export type { CliIo } from './io';

type Command = (argv: readonly string[], io: CliIo) => Promise<number>;

/**
 * The operating commands, by their first word; anything else is the release cycle's flags. Each
 * is loaded when it runs: a command's AWS SDK client costs ~0.3 s to load, which a run from a
 * local file or `deliver --mail-dir` never needs (bin/dequeue.js bundles them as chunks).
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  config: async () => (await import('./commands/config')).configCommand,
  deliver: async () => (await import('./commands/deliver')).deliverCommand,
  status: async () => (await import('./commands/status')).statusCommand,
};
const releaseCycle = async (): Promise<Command> => (await import('./commands/run')).runCommand;

function commandNamed(name: string | undefined): (() => Promise<Command>) | undefined {
  return name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

/** Run the CLI; resolves to the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' && rest.length === 0) {
    io.stdout.write(`${versionLine()}\n`);
    return 0;
  }
  if (first === 'help') {
    // `dequeue help` is the top usage; `dequeue help deliver` is `dequeue deliver --help`, and
    // `dequeue help config push` is `dequeue config push --help`.
    const [name, ...words] = rest;
    if (name === undefined) return (await releaseCycle())(['--help'], io);
    const named = commandNamed(name);
    if (!named) return usageError(io, 'dequeue', unknownCommand(name));
    return (await named())([...words, '--help'], io);
  }
  const named = commandNamed(first);
  if (named) return (await named())(rest, io);
  // `dequeue --config c.json --version`: the flag is known, only not among a run's flags.
  if (argv.includes('--version'))
    return usageError(io, 'dequeue', '--version is given alone: dequeue --version');
  // A first word that is not a flag is a command name, mistyped or unknown (`dequeue stauts`).
  if (first !== undefined && !first.startsWith('-'))
    return usageError(io, 'dequeue', unknownCommand(first));
  return (await releaseCycle())(argv, io);
}

function unknownCommand(name: string): string {
  const names = ['config', 'status', 'deliver', 'help'];
  const meant = didYouMean(name, names);
  return `unknown command "${name}"${meant ? `: did you mean ${meant}?` : ` (commands: ${names.join(', ')}; a release cycle: dequeue --config FILE)`}`;
}
