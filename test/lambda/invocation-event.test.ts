import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseInvocationEvent } from '../../lambda/invocation-event';

const ARN = 'arn:aws:scheduler:eu-west-1:123456789012:schedule/default/dequeue';
const scheduled = (extra: Record<string, unknown> = {}) => ({
  source: 'schedule',
  scheduleArn: ARN,
  scheduledTime: '2026-03-01T10:00:00Z',
  executionId: 'a1b2c3d4-0000-4000-8000-000000000001',
  attemptNumber: '1',
  ...extra,
});

describe('parseInvocationEvent', () => {
  it('a scheduled event stands for its slot: schedule ARN and scheduled time, not the execution id', () => {
    const first = parseInvocationEvent(scheduled());
    const retry = parseInvocationEvent(
      scheduled({ executionId: 'ffffffff-0000-4000-8000-000000000002', attemptNumber: 2 }),
    );
    expect(first.request).toEqual({ slot: `${ARN}#2026-03-01T10:00:00Z` });
    expect(retry.request).toEqual(first.request);
    expect(retry.delivery).toMatchObject({
      attemptNumber: 2,
      executionId: 'ffffffff-0000-4000-8000-000000000002',
    });
  });

  it('manual events: {} counts, force and dryRun and targets pass through, never a slot', () => {
    expect(parseInvocationEvent({}).request).toEqual({
      force: undefined,
      dryRun: undefined,
      targets: undefined,
    });
    expect(
      parseInvocationEvent({ force: true, targets: ['isp-etrn'], dryRun: true }).request,
    ).toEqual({ force: true, dryRun: true, targets: ['isp-etrn'] });
  });

  it.each([
    [null, 'invocation event: must be a JSON object: {} runs one cycle'],
    [{ force: 'yes' }, 'invocation event: force: must be true or false.'],
    [
      { targets: [] },
      'invocation event: targets: must name at least one target (leave it out for all).',
    ],
    [{ targets: ['bad name'] }, 'invocation event: targets.0: must be a target name'],
    [{ Force: true }, 'invocation event: Force: is not a known field.'],
    [scheduled({ source: 'aws.events' }), 'invocation event: source: must be "schedule".'],
    [
      scheduled({ scheduleArn: 'dequeue' }),
      'invocation event: scheduleArn: must be an ARN (arn:aws:scheduler:...).',
    ],
    [
      scheduled({ attemptNumber: '0' }),
      'invocation event: attemptNumber: must be a positive whole number (as a number or a string).',
    ],
    [
      scheduled({ executionId: undefined }),
      'invocation event: executionId: must be a string (the execution id).',
    ],
    [scheduled({ force: true }), 'invocation event: force: is not a known field.'],
  ])('refuses %j with a plain message', (event, message) => {
    expect(() => parseInvocationEvent(event)).toThrow(message);
  });
});

describe('the sample events in events/', () => {
  const dir = join(import.meta.dirname, '..', '..', 'events');
  const load = (name: string) =>
    parseInvocationEvent(JSON.parse(readFileSync(join(dir, name), 'utf8')));

  it.each(readdirSync(dir).filter((f) => f.endsWith('.json')))('%s is a valid event', (name) => {
    expect(load(name).kind).toBe(name.startsWith('scheduled') ? 'scheduled' : 'manual');
  });

  it('the retry is the same slot as the scheduled event, the next one another', () => {
    expect(load('scheduled-retry.json').request.slot).toBe(load('scheduled.json').request.slot);
    expect(load('scheduled-next.json').request.slot).not.toBe(load('scheduled.json').request.slot);
    expect(load('manual.json').request.slot).toBeUndefined();
  });
});
