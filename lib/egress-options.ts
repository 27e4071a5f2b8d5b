/**
 * The static egress options of the dequeue app (`staticEgress`, `egressAllocationId`,
 * `egressPorts`), read from CDK context by lib/deployment-options.ts.
 *
 * Static egress must be committed: `staticEgress` (and `egressAllocationId`) are taken only when
 * cdk.json's `context` block says the same. A value given with `-c` alone applies to that one
 * deploy; the next `cdk deploy` without it would remove the VPC and the NAT gateway, leave the
 * retained Elastic IP billed and unused, and lose port 25 and the address providers allow (an
 * `egressAllocationId` dropped the same way puts a new address on the NAT gateway). A synthesis
 * error cannot see what is deployed, so the value must sit where every later deploy reads it.
 * Turning static egress off stays possible, deliberately: set it to false in cdk.json.
 */
import { type ContextGetter, type ContextReader, DeploymentOptionsError } from './context-reader';
import { egressPortsProblem } from './function-egress';

export interface EgressOptions {
  /** Run in a VPC behind one NAT gateway with a fixed Elastic IP. Context `staticEgress`. */
  readonly staticEgress: boolean;
  /** Allocation id of an existing Elastic IP to use for static egress. Context `egressAllocationId`. */
  readonly egressAllocationId?: string;
  /** TCP ports the function may connect to besides 443; undefined: the construct's default. Context `egressPorts`. */
  readonly egressPorts?: readonly number[];
}

type EgressKey = 'staticEgress' | 'egressAllocationId' | 'egressPorts';

/**
 * @param committed reads cdk.json's `context` block (what every later deploy reads too)
 */
export function egressOptionsFrom(
  get: ContextGetter,
  read: ContextReader<EgressKey>,
  committed: ContextGetter,
): EgressOptions {
  const staticEgress = read.boolean('staticEgress');
  const egressAllocationId = read.optionalString(
    'egressAllocationId',
    /^eipalloc-[0-9a-f]{8,17}$/,
    'an Elastic IP allocation id such as eipalloc-0123456789abcdef0',
  );
  if (egressAllocationId !== undefined && !staticEgress) {
    throw new DeploymentOptionsError(
      'egressAllocationId',
      'Context "egressAllocationId" only applies with static egress: set "staticEgress": true in cdk.json, or drop egressAllocationId.',
    );
  }
  const egressPorts = egressPortsOf(get('egressPorts'));
  if (egressPorts !== undefined && !staticEgress) {
    throw new DeploymentOptionsError(
      'egressPorts',
      'Context "egressPorts" sets the security group of the function in its VPC: it only applies with static egress ("staticEgress": true in cdk.json).',
    );
  }
  if (staticEgress) {
    if (!isTrue(committed('staticEgress'))) {
      throw new DeploymentOptionsError(
        'staticEgress',
        'Context "staticEgress" must be set in the "context" block of cdk.json ("staticEgress": true), not only with -c: a later deploy without -c would remove the VPC and NAT gateway, leave the kept Elastic IP billed and unused, and lose port 25.',
      );
    }
    if (
      egressAllocationId !== undefined &&
      committed('egressAllocationId') !== egressAllocationId
    ) {
      throw new DeploymentOptionsError(
        'egressAllocationId',
        `Context "egressAllocationId" must be set in the "context" block of cdk.json ("egressAllocationId": "${egressAllocationId}"), not only with -c: a later deploy without it would put a new address on the NAT gateway, one no provider allows.`,
      );
    }
  }
  return { staticEgress, egressAllocationId, egressPorts };
}

function isTrue(value: unknown): boolean {
  return value === true || value === 'true';
}

/** "25,366,2525" (from -c) or [25, 366, 2525] (cdk.json); undefined when not given. */
function egressPortsOf(value: unknown): readonly number[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const ports =
    typeof value === 'string'
      ? value.split(',').map((p) => (/^\s*\d+\s*$/.test(p) ? Number(p) : p.trim()))
      : Array.isArray(value)
        ? value
        : [value];
  const problem = egressPortsProblem(ports);
  if (problem) {
    throw new DeploymentOptionsError(
      'egressPorts',
      `Context "egressPorts" ${problem} (a list such as 25,366,2525; 443 is always allowed).`,
    );
  }
  return ports as number[];
}
