/**
 * What the signal session's tests share (session.test.ts, session-tls-auth.test.ts): the
 * provider's account, the credentials that hold it, and scripted providers with the leftover
 * and unhandled-rejection checks after each test (test/support/signal-session.ts).
 */
import { DequeueError } from '../../../lambda/core/errors';
import type { Credentials } from '../../../lambda/core/ports';
import { signalSessions } from '../../support/signal-session';

export const account = { username: 'customer', password: 's3cret-pass' };
export const credentials: Credentials = {
  get: async (id) => {
    if (id === 'isp') return account;
    throw new DequeueError('config', `secret "${id}" not found`);
  },
};

/** Call once per test file: it registers the checks that run after each test. */
export const etrnSessions = () =>
  signalSessions({
    credentials,
    account,
    targetFields: { command: 'ETRN example.com' },
  });
