/**
 * What another CDK app imports: the ReleaseSignaller construct and its parts.
 * `import { ReleaseSignaller } from 'dequeue/lib'` (or a relative path to this folder).
 */
export { ReleaseSignaller } from './release-signaller';
export type { ReleaseSignallerProps } from './release-signaller-props';
export { ReleaseSignallerPropsError } from './release-signaller-checks';
export { StaticEgress, type StaticEgressProps } from './static-egress';
export { ReleaseSchedule, SCHEDULED_EVENT, type ReleaseScheduleProps } from './release-schedule';
export {
  SignallerAlarms,
  FAILING_TARGETS_METRIC,
  STALE_TARGETS_METRIC,
  TARGET_FAILURES_METRIC,
  FAILING_AFTER_CYCLES_ENV,
  STALE_AFTER_HOURS_ENV,
  type SignallerAlarmsProps,
} from './signaller-alarms';
export {
  SignallerDashboard,
  TARGET_OUTCOMES,
  type SignallerDashboardProps,
} from './signaller-dashboard';
export {
  ConsoleTestEvents,
  CONSOLE_TEST_EVENTS,
  TEST_EVENT_REGISTRY,
  testEventDocument,
  type ConsoleTestEventsProps,
} from './console-test-events';
export { MailReaderPolicy, type MailReaderPolicyProps } from './mail-reader-policy';
export { StatusReaderPolicy, type StatusReaderPolicyProps } from './status-reader-policy';
export { grantSignallerAccess, type SignallerAccess } from './signaller-permissions';
export { lambdaBundle, lambdaEsbuildOptions, LAMBDA_NODE_MAJOR } from './bundling';
export { DequeueStack, type DequeueStackProps } from './dequeue-stack';
export {
  deploymentOptionsFrom,
  DeploymentOptionsError,
  type DeploymentOptions,
} from './deployment-options';
