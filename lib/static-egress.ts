/**
 * A network whose only way out is one NAT gateway with a known Elastic IP.
 *
 * Why: AWS blocks outbound TCP 25 from Lambda functions that are not in a VPC, so an ETRN/QSND
 * signal to port 25 needs this path at all; and providers that restrict ETRN by client address
 * need one fixed address to allow. Behind a NAT gateway the EC2 port-25 limit still applies until
 * AWS lifts it on request (docs/deploy.md says how).
 */
import { CfnResource, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface StaticEgressProps {
  /**
   * Allocation id (`eipalloc-…`) of an existing Elastic IP to put on the NAT gateway, e.g. an
   * address that providers already allow.
   *
   * @default - a new Elastic IP, kept when the stack is deleted (providers allow it by address)
   */
  readonly allocationId?: string;
  /**
   * How long the VPC flow log (every connection the function opens, accepted or rejected) is kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly flowLogRetention?: logs.RetentionDays;
}

export class StaticEgress extends Construct {
  /** The VPC; the function belongs in its `PRIVATE_WITH_EGRESS` subnets. */
  readonly vpc: ec2.Vpc;
  /** The Elastic IP this construct created; undefined when `allocationId` was given. */
  readonly address?: ec2.CfnEIP;
  /** Allocation id of the NAT gateway's Elastic IP. */
  readonly allocationId: string;
  /** The subnets to place the function in. */
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

  constructor(scope: Construct, id: string, props: StaticEgressProps = {}) {
    super(scope, id);

    if (props.allocationId === undefined) {
      this.address = new ec2.CfnEIP(this, 'Address', {
        domain: 'vpc',
        tags: [{ key: 'Name', value: 'dequeue static egress' }],
      });
      // Providers allow this address by value: deleting the stack must not give it back to AWS.
      this.address.applyRemovalPolicy(RemovalPolicy.RETAIN);
      this.allocationId = this.address.attrAllocationId;
    } else {
      this.allocationId = props.allocationId;
    }

    const retention = props.flowLogRetention ?? logs.RetentionDays.ONE_MONTH;
    const flowLog = new logs.LogGroup(this, 'FlowLog', {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      // One NAT gateway is the point: one address. The second AZ's private subnet routes through
      // it too; an AZ outage costs at most a few cycles, which the next cycle repeats.
      natGateways: 1,
      natGatewayProvider: ec2.NatProvider.gateway({ eipAllocationIds: [this.allocationId] }),
      subnetConfiguration: [
        { name: 'nat', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 28 },
        { name: 'function', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
      ],
      // S3 and DynamoDB traffic (stored mail, the counter) bypasses the NAT: free and private.
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
      // A record of every connection to a provider: the first place to look when port 25 is
      // still blocked or a provider never answers.
      flowLogs: {
        Connections: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLog),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });

    this.keepDefaultSecurityGroupLog(retention);
  }

  /**
   * The VPC's default security group is emptied by CDK's custom resource
   * (`@aws-cdk/aws-ec2:restrictDefaultSecurityGroup` in cdk.json): a Lambda function of CDK's
   * own, one per stack, which would log to an `/aws/lambda/...` group it creates and that never
   * expires. It writes to a group of ours instead, kept as long as the flow log. (Its role has
   * AWSLambdaBasicExecutionRole, which allows writing to any group.)
   */
  private keepDefaultSecurityGroupLog(retention: logs.RetentionDays): void {
    const handler = Stack.of(this)
      .node.tryFindChild(RESTRICT_DEFAULT_SG_PROVIDER)
      ?.node.tryFindChild('Handler');
    if (!(handler instanceof CfnResource) || handler.node.tryFindChild(DEFAULT_SG_LOG)) return;
    const log = new logs.LogGroup(handler, DEFAULT_SG_LOG, {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    handler.addPropertyOverride('LoggingConfig', { LogGroup: log.logGroupName });
  }
}

/** The construct id CDK gives the stack's one provider of Custom::VpcRestrictDefaultSG. */
const RESTRICT_DEFAULT_SG_PROVIDER = 'Custom::VpcRestrictDefaultSGCustomResourceProvider';
const DEFAULT_SG_LOG = 'LogGroup';
