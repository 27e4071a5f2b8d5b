/**
 * The stack as deployed without static egress (the default): what a user gets from `cdk deploy`.
 * Synthesised once; each part of the stack has its own file of tests in test/lib/default-stack/.
 */
import { afterAll, beforeAll } from 'vitest';
import { alarmTests } from './default-stack/alarms';
import { consoleTestEventTests } from './default-stack/console-test-events';
import { dashboardAndOutputTests } from './default-stack/dashboard-and-outputs';
import { functionTests } from './default-stack/function';
import { leastPrivilegeTests } from './default-stack/least-privilege';
import { scheduleAndStateTests } from './default-stack/schedule-and-state';
import { workQueueTests } from './default-stack/work-queue';
import { synthDequeue, type SynthesisedDequeue } from './synth-dequeue';

let synth: SynthesisedDequeue;
beforeAll(() => {
  synth = synthDequeue();
});
afterAll(() => synth?.dispose());

const synthesised = () => synth;
functionTests(synthesised);
leastPrivilegeTests(synthesised);
scheduleAndStateTests(synthesised);
alarmTests(synthesised);
dashboardAndOutputTests(synthesised);
consoleTestEventTests(synthesised);
workQueueTests(synthesised);
