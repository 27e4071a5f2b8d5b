/** The Dovecot harness (peers/servers/dovecot.ts) and the tests' rule for when it is missing. */
import { dovecotMissing } from '../../peers/servers/dovecot';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/dovecot';

/** `describe` for a suite that needs Dovecot: fails in CI when it is missing, skips loudly elsewhere. */
export function describeWithDovecot(name: string, body: () => void): void {
  describeWithInstalled('Dovecot', dovecotMissing, name, body);
}
