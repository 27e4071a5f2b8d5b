/** The Exim 4.99.1 ODMR harness (peers/servers/exim-odmr.ts) and the tests' rule for when it is missing. */
import { eximOdmrMissing } from '../../peers/servers/exim-odmr';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/exim-odmr';

/** `describe` for a suite that needs Exim 4.99.1: fails in CI when it is missing, skips loudly elsewhere. */
export function describeWithEximOdmr(name: string, body: () => void): void {
  describeWithInstalled('Exim 4.99.1', eximOdmrMissing, name, body);
}
