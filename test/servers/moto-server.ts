/** The moto-server harness (peers/servers/moto-server.ts) and the tests' rule for when it is missing. */
import { hasMotoServer, MOTO_MISSING_MESSAGE } from '../../peers/servers/moto-server';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/moto-server';

/**
 * `describe` for a suite that needs moto_server. Present: an ordinary describe. Missing in CI: a
 * suite with one failing test carrying the plain message. Missing elsewhere: skipped, said on stderr.
 */
export function describeWithMotoServer(name: string, body: () => void): void {
  describeWithInstalled(
    'moto_server',
    hasMotoServer ? undefined : MOTO_MISSING_MESSAGE,
    name,
    body,
  );
}
