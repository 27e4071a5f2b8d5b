/** The inetsim harness (peers/servers/inetsim.ts) and the tests' rule for when it is missing. */
import { hasInetSim, INETSIM_MISSING_MESSAGE } from '../../peers/servers/inetsim';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/inetsim';

/** `describe` for a suite that needs INetSim: fails in CI when it is missing, skips loudly elsewhere. */
export function describeWithInetSim(name: string, body: () => void): void {
  describeWithInstalled('inetsim', hasInetSim ? undefined : INETSIM_MISSING_MESSAGE, name, body);
}
