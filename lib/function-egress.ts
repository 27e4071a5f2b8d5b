/**
 * In a VPC the function's security group lets it open TCP connections to the ports a release
 * signal uses and to HTTPS, nothing else: a function that someone made talk to anything else (a
 * compromised dependency, a target set to a port by mistake) is stopped at the network, and the
 * flow log shows the refused connection.
 *
 * Security groups do not filter Amazon's own DNS resolver (the VPC's .2 address), so MX lookups
 * for precheck need no rule:
 * https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-groups.html
 */
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as lambda from 'aws-cdk-lib/aws-lambda';

/**
 * The ports dequeue's configuration defaults to (docs/configuration.md): ETRN/QSND and precheck
 * and a relay on 25 (RFC 5321), FINGER on 79 (RFC 1288), ODMR on 366 (RFC 2645), SMTP over
 * implicit TLS on 465 (RFC 8314), submission on 587 (RFC 6409).
 */
export const DEFAULT_EGRESS_PORTS: readonly number[] = [25, 79, 366, 465, 587];

/**
 * HTTPS, always allowed: SSM, Secrets Manager, SQS and KMS through the NAT gateway, S3 and
 * DynamoDB through their gateway endpoints.
 */
export const AWS_API_PORT = 443;

/** The function's environment variable with the ports (lambda/environment.ts reads it). */
export const EGRESS_PORTS_ENV = 'DEQUEUE_EGRESS_PORTS';

/**
 * Allows `fn` (created with `allowAllOutbound: false`) out to `ports` and 443, over IPv4, and
 * tells it which (DEQUEUE_EGRESS_PORTS): a target on another port is then a config error that
 * names the port, not a connection that times out.
 */
export function limitFunctionEgress(fn: lambda.Function, ports: readonly number[]): void {
  const allowed = [...new Set([...ports, AWS_API_PORT])].sort((a, b) => a - b);
  fn.addEnvironment(EGRESS_PORTS_ENV, allowed.join(','));
  for (const port of allowed) {
    fn.connections.allowTo(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(port),
      port === AWS_API_PORT ? 'AWS APIs (HTTPS)' : `release signals to port ${port}`,
    );
  }
}

/** The problem with `ports` as an egress list, or undefined when there is none. */
export function egressPortsProblem(ports: readonly unknown[]): string | undefined {
  if (ports.length === 0) return 'must name at least one port';
  const bad = ports.find(
    (p) => typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535,
  );
  return bad === undefined
    ? undefined
    : `must be TCP ports from 1 to 65535, got ${JSON.stringify(bad)}`;
}
