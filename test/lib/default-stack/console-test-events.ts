/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the Lambda console's
 * shareable test events.
 */
import { Capture, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cfnText,
  onlyResource,
  signallerFunction,
  type SynthesisedDequeue,
} from '../synth-dequeue';

export function consoleTestEventTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('console test events', () => {
    it('are the shareable events of the function: dry run, ordinary cycle, force, one target', () => {
      const fn = signallerFunction(template);
      const content = new Capture();
      template.hasResourceProperties('AWS::EventSchemas::Schema', {
        RegistryName: 'lambda-testevent-schemas',
        SchemaName: { 'Fn::Join': ['', ['_', { Ref: fn.id }, '-schema']] },
        Type: 'OpenApi3',
        Content: content,
      });
      const document = JSON.parse(content.asString());
      expect(document.openapi).toBe('3.0.0');
      expect(document.components.examples).toEqual({
        'dry-run': { value: { dryRun: true } },
        'ordinary-cycle': { value: {} },
        force: { value: { force: true } },
        'one-target': { value: { targets: ['isp-etrn'] } },
      });
      expect(Object.keys(document.components.schemas.Event.properties).sort()).toEqual([
        'dryRun',
        'force',
        'targets',
      ]);
    });

    it('create the registry only where the account lacks it, and never delete it', () => {
      const registry = onlyResource(template, 'Custom::LambdaTestEventRegistry');
      const create = JSON.parse(registry.resource.Properties.Create);
      expect(create).toMatchObject({
        service: 'schemas',
        action: 'CreateRegistry',
        parameters: { RegistryName: 'lambda-testevent-schemas' },
        ignoreErrorCodesMatching: 'ConflictException',
      });
      expect(registry.resource.Properties.Update).toBeUndefined();
      expect(registry.resource.Properties.Delete).toBeUndefined();
      const schema = onlyResource(template, 'AWS::EventSchemas::Schema');
      expect(schema.resource.DependsOn).toContain(registry.id);
    });

    it('give the registry creator a role that may create that one registry and write its own log', () => {
      const registry = onlyResource(template, 'Custom::LambdaTestEventRegistry');
      const creatorId = registry.resource.Properties.ServiceToken['Fn::GetAtt'][0];
      const creator = template.toJSON().Resources[creatorId];
      const roleId = creator.Properties.Role['Fn::GetAtt'][0];
      expect(template.toJSON().Resources[roleId].Properties.ManagedPolicyArns).toBeUndefined();
      const statements = Object.values(
        template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }),
      ).flatMap((p: any) => p.Properties.PolicyDocument.Statement);
      expect(statements.map((st: any) => [st.Action, cfnText(st.Resource)]).sort()).toEqual(
        [
          [
            ['logs:CreateLogStream', 'logs:PutLogEvents'],
            `\${${creator.Properties.LoggingConfig.LogGroup.Ref}.Arn}`,
          ],
          [
            'schemas:CreateRegistry',
            'arn:${AWS::Partition}:schemas:${AWS::Region}:${AWS::AccountId}:registry/lambda-testevent-schemas',
          ],
        ].sort(),
      );
    });
  });
}
