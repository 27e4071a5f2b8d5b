/**
 * The mail reader policy on a bucket encrypted with a KMS key of its own (another app's bucket):
 * `dequeue deliver` must then decrypt what it reads and encrypt what it sets aside, through S3 only.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { describe, expect, it } from 'vitest';
import { MailReaderPolicy } from '../../lib/mail-reader-policy';
import { cfnText, onlyResource } from './synth-dequeue';

function policyStatements(encryption: 'kms' | 's3'): any[] {
  const stack = new Stack(new App(), 'Host');
  const bucket =
    encryption === 'kms'
      ? new s3.Bucket(stack, 'Mail', { encryptionKey: new kms.Key(stack, 'MailKey') })
      : new s3.Bucket(stack, 'Mail', { encryption: s3.BucketEncryption.S3_MANAGED });
  new MailReaderPolicy(stack, 'Reader', { bucket, mailPrefix: 'atrn/' });
  return onlyResource(Template.fromStack(stack), 'AWS::IAM::ManagedPolicy').resource.Properties.PolicyDocument.Statement;
}

describe('the mail reader policy', () => {
  it('may decrypt and encrypt with the bucket key, only through S3', () => {
    const statement = policyStatements('kms').find((st) => st.Sid === 'UseMailKey');
    expect(statement.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(statement.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MailKey/), 'Arn'] });
    expect(cfnText(statement.Condition.StringEquals['kms:ViaService'])).toBe('s3.${AWS::Region}.amazonaws.com');
  });

  it('needs no KMS permission with S3-managed encryption', () => {
    const actions = policyStatements('s3').flatMap((st) => [st.Action].flat());
    expect(actions.filter((a: string) => a.startsWith('kms:'))).toEqual([]);
  });
});
