/**
 * `"staticEgress": true`: the function reaches providers from one known address (and can reach
 * port 25 at all, which AWS blocks for functions outside a VPC), on the mail ports and HTTPS only.
 */
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cfnText,
  onlyResource,
  synthDequeue,
  SIGNALLER,
  signallerFunction,
  type SynthesisedDequeue,
} from './synth-dequeue';

let created: SynthesisedDequeue;
let reused: SynthesisedDequeue;
let template: Template;

beforeAll(() => {
  // Templates only: no bundle (synth-dequeue.ts).
  created = synthDequeue({ staticEgress: 'true' }, { bundle: false });
  reused = synthDequeue(
    {
      staticEgress: 'true',
      egressAllocationId: 'eipalloc-0123456789abcdef0',
      egressPorts: '25,2525',
    },
    { bundle: false },
  );
  template = created.template;
});
afterAll(() => {
  created?.dispose();
  reused?.dispose();
});

function theFunction(t: Template) {
  return signallerFunction(t);
}

describe('static egress with a new Elastic IP', () => {
  it('creates one VPC with one NAT gateway that wears the Elastic IP', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    const eip = onlyResource(template, 'AWS::EC2::EIP');
    expect(eip.resource.Properties.Domain).toBe('vpc');
    template.hasResourceProperties('AWS::EC2::NatGateway', {
      AllocationId: { 'Fn::GetAtt': [eip.id, 'AllocationId'] },
    });
  });

  it('keeps the Elastic IP when the stack is deleted: providers allow it by address', () => {
    template.hasResource('AWS::EC2::EIP', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('outputs the address and its allocation id', () => {
    const eip = onlyResource(template, 'AWS::EC2::EIP');
    template.hasOutput('EgressAddress', { Value: { 'Fn::GetAtt': [eip.id, 'PublicIp'] } });
    template.hasOutput('EgressAllocationId', { Value: { 'Fn::GetAtt': [eip.id, 'AllocationId'] } });
  });

  it('puts the function in the private subnets whose only way out is that NAT gateway', () => {
    const subnets = new Capture();
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      VpcConfig: {
        SubnetIds: subnets,
        SecurityGroupIds: [{ 'Fn::GetAtt': [Match.anyValue(), 'GroupId'] }],
      },
    });
    const subnetIds = (subnets.asArray() as { Ref: string }[]).map((s) => s.Ref);
    expect(subnetIds).toHaveLength(2);
    const resources = template.toJSON().Resources;
    const nat = onlyResource(template, 'AWS::EC2::NatGateway');
    for (const subnetId of subnetIds) {
      expect(resources[subnetId].Properties.MapPublicIpOnLaunch).toBe(false);
      // The subnet's route table sends everything that leaves the VPC to the one NAT gateway.
      const association = Object.values(
        template.findResources('AWS::EC2::SubnetRouteTableAssociation'),
      ).find((a: any) => a.Properties.SubnetId.Ref === subnetId) as any;
      const routeTable = association.Properties.RouteTableId.Ref;
      template.hasResourceProperties('AWS::EC2::Route', {
        RouteTableId: { Ref: routeTable },
        DestinationCidrBlock: '0.0.0.0/0',
        NatGatewayId: { Ref: nat.id },
      });
    }
  });

  it('lets the function connect to the mail ports and HTTPS only, and nothing in', () => {
    expect(functionEgress(template)).toEqual([
      { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 25, ToPort: 25 },
      { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 79, ToPort: 79 },
      { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 366, ToPort: 366 },
      { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 },
      { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 465, ToPort: 465 },
      { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 587, ToPort: 587 },
    ]);
    // The function knows them: a target on another port is a config error naming it.
    expect(signallerFunction(template).resource.Properties.Environment.Variables).toMatchObject({
      DEQUEUE_EGRESS_PORTS: '25,79,366,443,465,587',
    });
    const group = functionSecurityGroup(template);
    expect(group.resource.Properties.SecurityGroupIngress).toBeUndefined();
    // No rule anywhere else in the template widens it.
    template.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
  });

  it("keeps the log of CDK's default-security-group function as long as the function's", () => {
    const handler = onlyResource(template, 'AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('VPC default security group') },
    });
    const logGroupId = handler.resource.Properties.LoggingConfig?.LogGroup?.Ref;
    expect(logGroupId).toBeDefined();
    expect(template.toJSON().Resources[logGroupId].Properties.RetentionInDays).toBe(30);
    // Every function of the stack writes to a group with a retention: none to one that never expires.
    const groups = template.toJSON().Resources;
    for (const fn of Object.values(template.findResources('AWS::Lambda::Function')) as any[]) {
      const id = fn.Properties.LoggingConfig?.LogGroup?.Ref;
      expect(groups[id]?.Properties.RetentionInDays, fn.Properties.Description).toBeGreaterThan(0);
    }
  });

  it('routes S3 and DynamoDB through free gateway endpoints, not the NAT gateway', () => {
    for (const service of ['s3', 'dynamodb']) {
      const endpoints = Object.values(
        template.findResources('AWS::EC2::VPCEndpoint', {
          Properties: { VpcEndpointType: 'Gateway' },
        }),
      );
      expect(endpoints.map((e: any) => cfnText(e.Properties.ServiceName))).toContain(
        `com.amazonaws.\${AWS::Region}.${service}`,
      );
    }
  });

  it('records every connection in a VPC flow log', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', {
      ResourceType: 'VPC',
      TrafficType: 'ALL',
      LogDestinationType: 'cloud-watch-logs',
    });
  });

  it('grants the network-interface actions Lambda needs in a VPC, in their own statement', () => {
    const fn = theFunction(template);
    const roleId = fn.resource.Properties.Role['Fn::GetAtt'][0];
    const policy = onlyResource(template, 'AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId }] },
    });
    const statements = policy.resource.Properties.PolicyDocument.Statement;
    expect(statements.find((s: any) => s.Sid === 'ManageNetworkInterfaces')).toEqual({
      Sid: 'ManageNetworkInterfaces',
      Effect: 'Allow',
      Action: [
        'ec2:AssignPrivateIpAddresses',
        'ec2:CreateNetworkInterface',
        'ec2:DeleteNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:UnassignPrivateIpAddresses',
      ],
      Resource: '*',
    });
    // The only wildcard resource is that one; everything else stays as narrow as without a VPC.
    expect(statements.filter((s: any) => s.Resource === '*').map((s: any) => s.Sid)).toEqual([
      'ManageNetworkInterfaces',
    ]);
    const role = template.toJSON().Resources[roleId];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });
});

describe('static egress with an existing Elastic IP', () => {
  it('puts the given allocation on the NAT gateway and creates no address', () => {
    reused.template.resourceCountIs('AWS::EC2::EIP', 0);
    reused.template.hasResourceProperties('AWS::EC2::NatGateway', {
      AllocationId: 'eipalloc-0123456789abcdef0',
    });
    reused.template.hasOutput('EgressAllocationId', { Value: 'eipalloc-0123456789abcdef0' });
    expect(reused.template.findOutputs('EgressAddress')).toEqual({});
  });

  it('opens the ports egressPorts names, and HTTPS for the AWS APIs, no others', () => {
    expect(functionEgress(reused.template).map((rule: any) => rule.FromPort)).toEqual([
      25, 443, 2525,
    ]);
    expect(
      signallerFunction(reused.template).resource.Properties.Environment.Variables
        .DEQUEUE_EGRESS_PORTS,
    ).toBe('25,443,2525');
  });
});

/** The security group of dequeue's function. */
function functionSecurityGroup(t: Template): { id: string; resource: any } {
  const [ref] = signallerFunction(t).resource.Properties.VpcConfig.SecurityGroupIds;
  const id = ref['Fn::GetAtt'][0];
  return { id, resource: t.toJSON().Resources[id] };
}

/** Its egress rules, without their descriptions, by port. */
function functionEgress(t: Template): object[] {
  return functionSecurityGroup(t)
    .resource.Properties.SecurityGroupEgress.map(({ Description: _, ...rule }: any) => rule)
    .sort((a: any, b: any) => a.FromPort - b.FromPort);
}
