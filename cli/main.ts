/**
 * The CLI's front door: `dequeue --config FILE ...` runs a release cycle; the operating commands
 * (`config`, `status`, `deliver`) are words before the flags. Each command lives in cli/commands/
 * and resolves to its exit status: 0 done, 1 a target or message failed, 2 usage or configuration.
 */
import { processIo, type CliIo } from './io';

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

/** Run the CLI; resolves to the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  const named = first !== undefined && Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  return named ? (await named())(rest, io) : (await releaseCycle())(argv, io);
}
