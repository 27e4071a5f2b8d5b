/** The exim harness (peers/servers/exim.ts) and the tests' rule for when it is missing. */
import { eximMissing } from '../../peers/servers/exim';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/exim';

/** `describe` for a suite that needs Exim: fails in CI when it is missing, skips loudly elsewhere. */
export function describeWithExim(name: string, body: () => void): void {
  describeWithInstalled('Exim', eximMissing, name, body);
}
