/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the dashboard, the
 * saved queries and the stack outputs.
 */
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CfnTemplate } from '../../deploy/cloud-assembly';
import { CfnResolver } from '../../deploy/cfn-resolve';
import {
  cfnText,
  onlyResource,
  signallerFunction,
  signallerLogGroup,
  type SynthesisedDequeue,
} from '../synth-dequeue';

export function dashboardAndOutputTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('the dashboard and saved queries', () => {
    /** The dashboard body as JSON, references rendered as `${LogicalId}`. */
    function dashboardBody(): any {
      const dashboard = onlyResource(template, 'AWS::CloudWatch::Dashboard');
      return JSON.parse(cfnText(dashboard.resource.Properties.DashboardBody));
    }
    const widget = (title: string) =>
      dashboardBody().widgets.find((w: any) => w.properties.title === title)?.properties;

    it('is named after the stack and its region (dashboards are global to the account) and opens on the last day', () => {
      template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
        DashboardName: { 'Fn::Join': ['', ['Dequeue-', { Ref: 'AWS::Region' }]] },
      });
      expect(dashboardBody().start).toBe('-P1D');
    });

    it('graphs cycles, errors, targets by every outcome, failing and stale targets and stored mail', () => {
      const fn = signallerFunction(template);
      const cycles = widget('Cycles (function invocations) and failed ones');
      expect(cycles.metrics.map((m: any[]) => m.slice(0, 4))).toEqual([
        ['AWS/Lambda', 'Invocations', 'FunctionName', `\${${fn.id}}`],
        ['AWS/Lambda', 'Errors', 'FunctionName', `\${${fn.id}}`],
        ['AWS/Lambda', 'Throttles', 'FunctionName', `\${${fn.id}}`],
      ]);
      const outcomes = widget('Targets by outcome');
      expect(outcomes.stacked).toBe(true);
      expect(outcomes.metrics.map((m: any[]) => m.slice(0, 6))).toEqual(
        [
          'signalled',
          'no-mail',
          'skipped',
          'temporary-failure',
          'permanent-failure',
          'config-error',
        ].map((o) => ['Dequeue', 'Targets', 'outcome', o, 'service', 'Dequeue']),
      );
      const failing = widget('Failing, stale and server-down targets (the alarms watch these)');
      expect(failing.metrics).toContainEqual([
        'Dequeue',
        'FailingTargets',
        'service',
        'Dequeue',
        expect.objectContaining({ stat: 'Maximum' }),
      ]);
      expect(failing.metrics).toContainEqual([
        'Dequeue',
        'ServerDownTargets',
        'service',
        'Dequeue',
        expect.objectContaining({ stat: 'Maximum' }),
      ]);
      expect(failing.metrics).toContainEqual([
        'Dequeue',
        'StaleTargets',
        'service',
        'Dequeue',
        expect.objectContaining({ stat: 'Maximum' }),
      ]);
      expect(widget('Messages stored after ATRN').metrics).toEqual([
        [
          'Dequeue',
          'MessagesStored',
          'service',
          'Dequeue',
          expect.objectContaining({ stat: 'Sum' }),
        ],
      ]);
    });

    it('graphs the cycle duration against the function timeout', () => {
      const duration = widget('Cycle duration (function duration)');
      expect(duration.metrics.map((m: any[]) => m[1])).toEqual(['Duration', 'Duration']);
      expect(duration.annotations.horizontal).toEqual([
        expect.objectContaining({ value: 900_000, label: 'timeout' }),
      ]);
    });

    it('saves a Logs Insights query for the last result of every target, over the function log', () => {
      const logGroup = signallerLogGroup(template);
      const query = new Capture();
      template.hasResourceProperties('AWS::Logs::QueryDefinition', {
        Name: 'Dequeue/last result per target',
        LogGroupNames: [{ Ref: logGroup.id }],
        QueryString: query,
      });
      expect(query.asString()).toContain('filter message = "target result"');
      expect(query.asString()).toMatch(
        /stats latest\(outcome\) as lastOutcome, .*latest\(error\) as lastError by target/,
      );
    });

    it('saves a query for failed results and shows the last day of them on the dashboard', () => {
      const logGroup = signallerLogGroup(template);
      const query = new Capture();
      template.hasResourceProperties('AWS::Logs::QueryDefinition', {
        Name: Match.stringLikeRegexp('^Dequeue/failures'),
        LogGroupNames: [{ Ref: logGroup.id }],
        QueryString: query,
      });
      expect(query.asString()).toContain(
        'filter outcome in ["temporary-failure", "permanent-failure", "config-error"]',
      );
      const table = widget('Failed target results');
      expect(table.view).toBe('table');
      expect(table.query).toBe(`SOURCE '\${${logGroup.id}}' | ${query.asString()}`);
    });
  });

  describe('outputs', () => {
    it('name what an operator needs after deploying', () => {
      const fn = signallerFunction(template);
      template.hasOutput('FunctionName', { Value: { Ref: fn.id } });
      for (const name of [
        'LogGroupName',
        'CounterTableName',
        'MailBucketName',
        'AlarmTopicArn',
        'DeadLetterQueueUrl',
      ]) {
        expect(Object.keys(template.findOutputs(name)), name).toEqual([name]);
      }
    });

    it.each([
      [
        'aws',
        'eu-central-1',
        'https://eu-central-1.console.aws.amazon.com/cloudwatch/home?region=eu-central-1',
      ],
      ['aws-cn', 'cn-north-1', 'https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1'],
      [
        'aws-us-gov',
        'us-gov-west-1',
        'https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1',
      ],
    ])(
      'name the dashboard and link to it in the console of the partition (%s)',
      (partition, region, consoleHome) => {
        const dashboard = onlyResource(template, 'AWS::CloudWatch::Dashboard');
        template.hasOutput('DashboardName', { Value: { Ref: dashboard.id } });
        const url = template.findOutputs('DashboardUrl').DashboardUrl;
        expect(url, 'the stack has a DashboardUrl output').toBeDefined();
        if (url === undefined) return;
        // As CloudFormation would resolve it, deployed in that partition and region.
        const resolver = new CfnResolver(template.toJSON() as CfnTemplate, {
          partition,
          region,
          accountId: '123456789012',
          stackName: 'Dequeue',
          urlSuffix: 'amazonaws.com',
        });
        const name = resolver.physicalOf(dashboard.id).ref;
        expect(resolver.condition(url.Condition)).toBe(true);
        expect(resolver.string(url.Value)).toBe(`${consoleHome}#dashboards/dashboard/${name}`);
      },
    );

    it('leave the dashboard link out in a partition whose console it does not know, rather than give a wrong one', () => {
      const url = template.findOutputs('DashboardUrl').DashboardUrl;
      expect(url, 'the stack has a DashboardUrl output').toBeDefined();
      if (url === undefined) return;
      const resolver = new CfnResolver(template.toJSON() as CfnTemplate, {
        partition: 'aws-iso',
        region: 'us-iso-east-1',
        accountId: '123456789012',
        stackName: 'Dequeue',
        urlSuffix: 'c2s.ic.gov',
      });
      expect(resolver.condition(url.Condition)).toBe(false);
    });
  });
}
