import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyMetadataTail, splitMetadataTail } from '../../src/build/tail.js';

const EXAMPLE = `# syntax=docker/dockerfile:1
FROM debian:bookworm-slim AS base
RUN apt-get update \\
 && apt-get install -y python3

FROM base AS runtime
WORKDIR /app
COPY --from=build /out/ /app/
# the config-only tail
USER app
ENV PORT=8080 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080 53/UDP
LABEL org.example.team="web team" tier=front
STOPSIGNAL SIGINT
CMD ["python3", "/app/server.pyc"]
`;

test('splitMetadataTail: the config-only instructions at the end of the final stage', () => {
  const t = splitMetadataTail(EXAMPLE)!;
  assert.ok(t);
  assert.deepEqual(
    t.steps.map((s) => s.keyword),
    ['USER', 'ENV', 'EXPOSE', 'LABEL', 'STOPSIGNAL', 'CMD'],
  );
  assert.ok(t.head.endsWith('COPY --from=build /out/ /app/\n# the config-only tail\n'), t.head);
  assert.ok(t.head.startsWith('# syntax=docker/dockerfile:1\nFROM debian:bookworm-slim AS base\nRUN apt-get update \\\n'));
  assert.equal(t.cmdSetBefore, false);
});

test('splitMetadataTail: files it leaves to buildah', () => {
  const cases: Record<string, string> = {
    'no tail': 'FROM a\nRUN true\n',
    'variables': 'FROM a\nRUN true\nENV B=$A\n',
    'escape directive': '# escape=`\nFROM a\nRUN true\nUSER x\n',
    'SHELL': 'FROM a\nSHELL ["/bin/bash", "-c"]\nRUN true\nCMD run me\n',
    'heredoc': 'FROM a\nRUN <<EOF\ntrue\nEOF\nUSER x\n',
    'escaped quotes': 'FROM a\nRUN true\nENV A="x\\"y"\n',
    'port range': 'FROM a\nRUN true\nEXPOSE 8000-8010\n',
    'CMD that is not a JSON array': 'FROM a\nRUN true\nCMD [not json\n',
    // buildah keeps at least one instruction after FROM.
    'only FROM and the tail': 'FROM a\nUSER x\n',
    'ONBUILD': 'FROM a\nRUN true\nONBUILD RUN x\nUSER x\n',
  };
  for (const [name, df] of Object.entries(cases)) assert.equal(splitMetadataTail(df), undefined, name);
  // The tail stops at the first instruction that is not config-only.
  const t = splitMetadataTail('FROM a\nRUN true\nUSER x\nWORKDIR /w\nCMD ["w"]\n')!;
  assert.deepEqual(t.steps, [{ keyword: 'CMD', args: '["w"]' }]);
  assert.equal(t.head, 'FROM a\nRUN true\nUSER x\nWORKDIR /w\n');
});

test('applyMetadataTail: what Docker writes for the same instructions', () => {
  const now = new Date('2026-01-02T03:04:05Z');
  const base = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: ['sha256:aa'] },
    config: { Env: ['PATH=/usr/bin', 'PORT=1'], Cmd: ['bash'], Labels: { keep: 'me' }, WorkingDir: '/app' },
    history: [{ created_by: 'base' }],
  };
  const out = applyMetadataTail(base, splitMetadataTail(EXAMPLE)!, now);
  assert.deepEqual(out.config, {
    Env: ['PATH=/usr/bin', 'PORT=8080', 'PYTHONDONTWRITEBYTECODE=1'],
    Cmd: ['python3', '/app/server.pyc'],
    Labels: { keep: 'me', 'org.example.team': 'web team', tier: 'front' },
    WorkingDir: '/app',
    User: 'app',
    ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
    StopSignal: 'SIGINT',
  });
  assert.deepEqual(out.rootfs, base.rootfs, 'layers untouched');
  assert.equal(out.created, now.toISOString());
  assert.deepEqual(
    out.history!.slice(1).map((h) => [h.created_by, h.empty_layer]),
    [
      ['/bin/sh -c #(nop) USER app', true],
      ['/bin/sh -c #(nop) ENV PORT=8080 PYTHONDONTWRITEBYTECODE=1', true],
      ['/bin/sh -c #(nop) EXPOSE 8080 53/UDP', true],
      ['/bin/sh -c #(nop) LABEL org.example.team="web team" tier=front', true],
      ['/bin/sh -c #(nop) STOPSIGNAL SIGINT', true],
      ['/bin/sh -c #(nop) CMD ["python3", "/app/server.pyc"]', true],
    ],
  );
  assert.deepEqual(base.config.Env, ['PATH=/usr/bin', 'PORT=1'], 'the input is not modified');
  // Without a time, the built image's own stamp is kept: same input, same digest.
  const stamped = { ...base, created: '2025-05-06T07:08:09.123456789Z' };
  const again = applyMetadataTail(stamped, splitMetadataTail(EXAMPLE)!);
  assert.equal(again.created, '2025-05-06T07:08:09.123456789Z');
  assert.ok(again.history!.slice(1).every((h) => h.created === again.created));
  assert.deepEqual(again, applyMetadataTail(stamped, splitMetadataTail(EXAMPLE)!));

  // Shell form; ENTRYPOINT drops an inherited CMD unless the stage set one.
  const a = applyMetadataTail(base, splitMetadataTail('FROM a\nRUN x\nENTRYPOINT /bin/app --serve\n')!, now);
  assert.deepEqual(a.config!.Entrypoint, ['/bin/sh', '-c', '/bin/app --serve']);
  assert.equal(a.config!.Cmd, null);
  const b = applyMetadataTail(base, splitMetadataTail('FROM a\nCMD ["x"]\nRUN x\nENTRYPOINT ["/bin/app"]\n')!, now);
  assert.deepEqual(b.config!.Cmd, ['bash'], 'a CMD earlier in the stage survives ENTRYPOINT');
  const c = applyMetadataTail(base, splitMetadataTail('FROM a\nRUN x\nENTRYPOINT ["/e"]\nCMD ["c"]\n')!, now);
  assert.deepEqual([c.config!.Entrypoint, c.config!.Cmd], [['/e'], ['c']]);
  // Legacy `ENV key value`.
  const d = applyMetadataTail(base, splitMetadataTail('FROM a\nRUN x\nENV GREETING hello there\n')!, now);
  assert.ok(d.config!.Env!.includes('GREETING=hello there'));
});
