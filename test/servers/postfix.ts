/** The postfix harness (peers/servers/postfix.ts) and the tests' rule for when it is missing. */
import { postfixMissing } from '../../peers/servers/postfix';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/postfix';

/**
 * `describe` for a suite that needs Postfix. Available: an ordinary describe. Missing in CI: a
 * suite with one failing test carrying the plain message. Missing elsewhere: skipped, said on stderr.
 */
export function describeWithPostfix(name: string, body: () => void): void {
  describeWithInstalled('Postfix', postfixMissing, name, body);
}
