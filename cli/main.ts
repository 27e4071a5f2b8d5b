/**
 * The CLI's front door: `dequeue --config FILE ...` runs a release cycle; the operating commands
 * (`config`, `status`, `deliver`) are words before the flags. Each command lives in cli/commands/
 * and resolves to its exit status: 0 done, 1 a target or message failed, 2 usage or configuration.
 */
import { processIo, type CliIo } from './io';
import { configCommand } from './commands/config';
import { deliverCommand } from './commands/deliver';
import { runCommand } from './commands/run';
import { statusCommand } from './commands/status';

export type { CliIo } from './io';

type Command = (argv: readonly string[], io: CliIo) => Promise<number>;

/** The operating commands, by their first word; anything else is the release cycle's flags. */
const COMMANDS: Readonly<Record<string, Command>> = {
  config: configCommand,
  deliver: deliverCommand,
  status: statusCommand,
};

/** Run the CLI; resolves to the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  const command = first !== undefined && Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  return command ? command(rest, io) : runCommand(argv, io);
}
