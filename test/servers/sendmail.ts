/** The sendmail harness (peers/servers/sendmail.ts) and the tests' rule for when it is missing. */
import { sendmailMissing } from '../../peers/servers/sendmail';
import { describeWithInstalled } from './installed';

export * from '../../peers/servers/sendmail';

/** `describe` for a suite that needs sendmail: fails in CI when it is missing, skips loudly elsewhere. */
export function describeWithSendmail(name: string, body: () => void): void {
  describeWithInstalled('sendmail', sendmailMissing, name, body);
}
