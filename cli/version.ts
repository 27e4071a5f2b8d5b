/**
 * `dequeue --version`, and the Node.js versions dequeue supports: 22 and 24 (`engines` in
 * package.json, README "Set-up"). Node.js 20 reached its end of life in April 2026; dequeue still
 * runs on it, and says so in one line of its own where the AWS SDK would print its eight-line
 * end-of-support warning: when a command makes its first AWS client (cli/entry.ts wires it).
 */
import { version } from '../package.json';

/** The oldest major version dequeue supports. */
export const OLDEST_SUPPORTED_NODE = 22;

/** Whether this Node.js is older than the versions dequeue supports. */
export function unsupportedNode(nodeVersion = process.versions.node): boolean {
  return Number(nodeVersion.split('.')[0]) < OLDEST_SUPPORTED_NODE;
}

/** One line for an operator on an unsupported Node.js, or undefined on a supported one. */
export function nodeWarning(nodeVersion = process.versions.node): string | undefined {
  return unsupportedNode(nodeVersion)
    ? `warning: Node.js ${nodeVersion} is past its end of life: dequeue supports Node.js ${OLDEST_SUPPORTED_NODE} and 24`
    : undefined;
}

export function versionLine(nodeVersion = process.versions.node): string {
  return `dequeue ${version} (Node.js ${nodeVersion}${unsupportedNode(nodeVersion) ? ', unsupported' : ''})`;
}

let beforeFirstAwsClient: (() => void) | undefined;

/** The process entry says what happens before the first AWS client is made (once). */
export function onFirstAwsClient(hook: () => void): void {
  beforeFirstAwsClient = hook;
}

/** Called by every command before it makes an AWS SDK client. */
export function awsClientComing(): void {
  const hook = beforeFirstAwsClient;
  beforeFirstAwsClient = undefined;
  hook?.();
}
