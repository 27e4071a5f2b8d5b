/** RFC 5321 4.5.3.2's table and the reply bound that a configured timeoutSeconds replaces. */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_REPLY_TIMEOUT_MS,
  replyTimeoutMs,
  SMTP_TIMEOUTS,
} from '../../../lambda/core/smtp/timeouts';

describe('SMTP_TIMEOUTS', () => {
  it('are RFC 5321 4.5.3.2’s minutes, step by step', () => {
    const minutes = Object.fromEntries(
      Object.entries(SMTP_TIMEOUTS).map(([step, ms]) => [step, ms / 60_000]),
    );
    expect(minutes).toEqual({
      greeting: 5,
      command: 5,
      dataStart: 2,
      dataBlock: 3,
      finalDot: 10,
      serverCommand: 5,
    });
  });
});

describe('replyTimeoutMs', () => {
  it('is the configured timeoutSeconds in milliseconds', () => {
    expect(replyTimeoutMs(5)).toBe(5_000);
    expect(replyTimeoutMs(600, SMTP_TIMEOUTS.finalDot)).toBe(600_000);
  });

  it('is 30 s for a release signal when none is configured, else the step’s own bound', () => {
    expect(replyTimeoutMs(undefined)).toBe(30_000);
    expect(DEFAULT_REPLY_TIMEOUT_MS).toBe(30_000);
    expect(replyTimeoutMs(undefined, SMTP_TIMEOUTS.finalDot)).toBe(10 * 60_000);
  });
});
