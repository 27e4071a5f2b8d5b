/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the Lambda console's
 * shareable test events.
 */
import type { Template } from 'aws-cdk-lib/assertions';
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
    /** The SDK calls of the custom resource that keeps the schema, references as `${LogicalId}`. */
    const schemaCalls = () => {
      const schema = onlyResource(template, 'Custom::LambdaTestEventSchema');
      const call = (event: string) => {
        const value = schema.resource.Properties[event];
        return value === undefined ? undefined : JSON.parse(cfnText(value));
      };
      return { schema, create: call('Create'), update: call('Update'), delete: call('Delete') };
    };

    it('are the shareable events of the function: dry run, ordinary cycle, force, one target', () => {
      const fn = signallerFunction(template);
      const { create, update } = schemaCalls();
      expect(create).toMatchObject({
        service: 'schemas',
        action: 'CreateSchema',
        parameters: {
          RegistryName: 'lambda-testevent-schemas',
          SchemaName: `_\${${fn.id}}-schema`,
          Type: 'OpenApi3',
        },
      });
      // A change of the events reaches a deployed stack.
      expect(update).toMatchObject({ action: 'UpdateSchema', parameters: create.parameters });
      const document = JSON.parse(create.parameters.Content);
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

    it('cannot fail the deploy over a schema saved by hand: it is kept as its owner left it; the stack owns no AWS::EventSchemas::Schema', () => {
      const { create, update, delete: remove } = schemaCalls();
      template.resourceCountIs('AWS::EventSchemas::Schema', 0);
      expect(create.ignoreErrorCodesMatching).toBe('ConflictException');
      expect(update.ignoreErrorCodesMatching).toBe('NotFoundException');
      expect(remove).toMatchObject({
        action: 'DeleteSchema',
        parameters: { RegistryName: 'lambda-testevent-schemas' },
        ignoreErrorCodesMatching: 'NotFoundException',
      });
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
      expect(schemaCalls().schema.resource.DependsOn).toContain(registry.id);
    });

    it('give the registry and schema keeper a role that may create that one registry, keep that one schema and write its own log', () => {
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
          [
            ['schemas:CreateSchema', 'schemas:DeleteSchema', 'schemas:UpdateSchema'],
            `arn:\${AWS::Partition}:schemas:\${AWS::Region}:\${AWS::AccountId}:schema/lambda-testevent-schemas/_\${${signallerFunction(template).id}}-schema`,
          ],
        ].sort(),
      );
    });
  });
}
