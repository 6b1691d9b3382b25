import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  DockerfileError,
  UnsupportedFeature,
  expandWord,
  expandWords,
  isRemoteSource,
  parseDockerfile,
  type Instruction,
} from '../../src/build/native/dockerfile.js';

/** A Dockerfile from lines (each string is one physical line). */
const df = (...lines: string[]) => lines.join('\n') + '\n';

function errorAt(text: string, line: number, re: RegExp): void {
  assert.throws(
    () => parseDockerfile(text),
    (e: unknown) => {
      assert.ok(e instanceof DockerfileError, `expected a DockerfileError, got ${String(e)}`);
      assert.equal(e.line, line, e.message);
      assert.ok(e.message.startsWith(`Dockerfile line ${line}: `), e.message);
      assert.match(e.message, re);
      return true;
    },
  );
}

function unsupportedAt(text: string, line: number, re: RegExp): void {
  assert.throws(
    () => parseDockerfile(text),
    (e: unknown) => {
      assert.ok(e instanceof UnsupportedFeature, `expected an UnsupportedFeature, got ${String(e)}`);
      assert.equal(e.line, line, e.reason);
      assert.match(e.reason, re);
      assert.match(e.reason, /not supported by the native builder/);
      return true;
    },
  );
}

/** The instructions of the only (or last) stage. */
function body(text: string): Instruction[] {
  const d = parseDockerfile(text);
  return d.stages[d.stages.length - 1]!.instructions;
}

/** The member of Instruction with this kind (Extract would drop the COPY | ADD member). */
type Of<K extends Instruction['kind']> = Instruction & { kind: K };

function only<K extends Instruction['kind']>(text: string, kind: K): Of<K> {
  const ins = body(text);
  assert.equal(ins.length, 1, JSON.stringify(ins));
  assert.equal(ins[0]!.kind, kind);
  return ins[0] as Of<K>;
}

const env = (vars: Record<string, string>) => (name: string) => (Object.hasOwn(vars, name) ? vars[name] : undefined);

test('examples/hello-python/Dockerfile: three stages with their instructions', () => {
  const text = readFileSync(new URL('../../../examples/hello-python/Dockerfile', import.meta.url), 'utf8');
  const d = parseDockerfile(text);
  assert.equal(d.escape, '\\');
  assert.deepEqual(d.globalArgs, []);
  assert.deepEqual(
    d.stages.map((s) => [s.index, s.name, s.from, s.line, s.instructions.map((i) => i.kind)]),
    [
      [0, 'base', 'debian:bookworm-slim', 5, ['RUN']],
      [1, 'build', 'base', 10, ['WORKDIR', 'COPY', 'RUN']],
      [2, 'runtime', 'base', 15, ['RUN', 'WORKDIR', 'COPY', 'USER', 'ENV', 'EXPOSE', 'CMD']],
    ],
  );
  const [base, build, runtime] = d.stages;
  const apt = base!.instructions[0]!;
  assert.equal(apt.kind, 'RUN');
  assert.equal(apt.line, 6);
  assert.deepEqual(apt.kind === 'RUN' && apt.command, {
    form: 'shell',
    script: 'apt-get update  && apt-get install -y --no-install-recommends python3  && rm -rf /var/lib/apt/lists/*',
  });
  assert.deepEqual(build!.instructions[1], { kind: 'COPY', line: 12, text: 'COPY *.py ./', sources: ['*.py'], dest: './', link: false });
  assert.deepEqual(runtime!.instructions[2], {
    kind: 'COPY',
    line: 18,
    text: 'COPY --from=build --chown=app:app /out/ /app/',
    sources: ['/out/'],
    dest: '/app/',
    from: 'build',
    chown: 'app:app',
    link: false,
  });
  assert.deepEqual(runtime!.instructions[3], { kind: 'USER', line: 19, text: 'USER app', user: 'app' });
  assert.deepEqual(runtime!.instructions[4], {
    kind: 'ENV',
    line: 20,
    text: 'ENV PORT=8080 PYTHONDONTWRITEBYTECODE=1',
    pairs: [
      ['PORT', '8080'],
      ['PYTHONDONTWRITEBYTECODE', '1'],
    ],
  });
  assert.deepEqual(runtime!.instructions[5], { kind: 'EXPOSE', line: 21, text: 'EXPOSE 8080', ports: ['8080'] });
  assert.deepEqual(runtime!.instructions[6], {
    kind: 'CMD',
    line: 22,
    text: 'CMD ["python3", "/app/server.pyc"]',
    command: { form: 'exec', argv: ['python3', '/app/server.pyc'] },
  });
});

test('parser directives: syntax and escape at the top, in any case, once each', () => {
  const d = parseDockerfile(df('# syntax=docker/dockerfile:1', '#ESCAPE = `', 'FROM a', 'RUN dir C:\\ `', '  && echo done'));
  assert.equal(d.escape, '`');
  // With ` as escape, a trailing backslash is plain text and ` continues the line.
  assert.deepEqual(only(df('# escape=`', 'FROM a', 'RUN dir C:\\ `', '  && echo done'), 'RUN').command, {
    form: 'shell',
    script: 'dir C:\\   && echo done',
  });
  assert.equal(parseDockerfile(df('#escape=\\', 'FROM a')).escape, '\\');
  // After a comment, a blank line or an unknown directive, "# escape=" is just a comment.
  assert.equal(parseDockerfile(df('# a comment', '# escape=`', 'FROM a')).escape, '\\');
  assert.equal(parseDockerfile(df('', '# escape=`', 'FROM a')).escape, '\\');
  assert.equal(parseDockerfile(df('# foo=bar', '# escape=`', 'FROM a')).escape, '\\');
  assert.equal(parseDockerfile(df('FROM a', '# escape=`', 'RUN x')).escape, '\\');
  errorAt(df('# escape=`', '# escape=\\', 'FROM a'), 2, /only one "# escape=" parser directive/);
  errorAt(df('# syntax=docker/dockerfile:1', '# syntax=docker/dockerfile:1.7', 'FROM a'), 2, /only one "# syntax="/);
  errorAt(df('# escape=x', 'FROM a'), 1, /not a valid escape character/);
  for (const syntax of ['docker/dockerfile:1', 'docker/dockerfile:1.7-labs', 'docker.io/docker/dockerfile:1@sha256:ac85f380a63b13dfcefa89046420e1781752bab202122f8f50032edf31be0021', 'docker/dockerfile-upstream:master', 'docker/dockerfile']) {
    assert.equal(parseDockerfile(df(`# syntax=${syntax}`, 'FROM a')).stages.length, 1, syntax);
  }
  unsupportedAt(df('# escape=`', '# syntax=example.com/other/frontend:2', 'FROM a'), 2, /"# syntax=example.com\/other\/frontend:2" \(a custom Dockerfile frontend\)/);
});

test('BOM, CRLF line ends, comments, blank lines and whitespace', () => {
  const d = parseDockerfile('\ufeff# escape=`\r\nFROM a\r\nRUN echo hi `\r\n  there\r\n\r\n   # indented comment\r\n\tcmd ["x"]\r\n');
  assert.equal(d.escape, '`');
  assert.deepEqual(
    d.stages[0]!.instructions.map((i) => [i.line, i.text]),
    [
      [3, 'RUN echo hi   there'],
      [7, 'cmd ["x"]'],
    ],
  );
  assert.equal(parseDockerfile('\ufeffFROM scratch').stages[0]!.from, 'scratch');
  // A # that does not start the line is not a comment.
  assert.deepEqual(only(df('FROM a', 'RUN echo "# kept" # also kept'), 'RUN').command, { form: 'shell', script: 'echo "# kept" # also kept' });
});

test('line continuations: comment and blank lines inside, blanks after the escape, escaped escape, end of file', () => {
  const ins = body(
    df(
      'FROM a',
      'RUN echo one \\',
      '# a comment inside the continuation',
      '    two \\   ',
      '',
      '  \t',
      '    three',
      'RUN echo a\\\\',
      'RUN echo b \\',
    ),
  );
  assert.deepEqual(
    ins.map((i) => [i.line, i.kind === 'RUN' && i.command]),
    [
      [2, { form: 'shell', script: 'echo one     two     three' }],
      [8, { form: 'shell', script: 'echo a\\\\' }],
      [9, { form: 'shell', script: 'echo b' }],
    ],
  );
  assert.equal(ins[0]!.text, 'RUN echo one     two     three');
  // Continuations join flags and arguments of any instruction.
  const c = only(df('FROM a', 'COPY --from=build \\', '  --chown=1:1 \\', '  /out/ /app/'), 'COPY');
  assert.deepEqual([c.from, c.chown, c.sources, c.dest, c.line], ['build', '1:1', ['/out/'], '/app/', 2]);
  assert.equal(c.text, 'COPY --from=build   --chown=1:1   /out/ /app/');
});

test('keywords are case-insensitive; stage names are lower-cased', () => {
  const d = parseDockerfile(df('from alpine:3 As Build', 'Run echo hi', 'fRoM build', 'copy --from=Build /a /b'));
  assert.deepEqual(
    d.stages.map((s) => [s.name, s.from]),
    [
      ['build', 'alpine:3'],
      [undefined, 'build'],
    ],
  );
  assert.equal(d.stages[0]!.instructions[0]!.kind, 'RUN');
  assert.equal(d.stages[1]!.instructions[0]!.kind, 'COPY');
});

test('exec (JSON) form versus shell form', () => {
  assert.deepEqual(only(df('FROM a', 'RUN ["echo", "a b"]'), 'RUN').command, { form: 'exec', argv: ['echo', 'a b'] });
  assert.deepEqual(only(df('FROM a', 'ENTRYPOINT   [ "/bin/app" ,"--flag" ]'), 'ENTRYPOINT').command, { form: 'exec', argv: ['/bin/app', '--flag'] });
  assert.deepEqual(only(df('FROM a', 'CMD []'), 'CMD').command, { form: 'exec', argv: [] });
  // Not valid JSON: Docker takes it as a shell command.
  assert.deepEqual(only(df('FROM a', "CMD ['python3', 'app.py']"), 'CMD').command, { form: 'shell', script: "['python3', 'app.py']" });
  assert.deepEqual(only(df('FROM a', 'CMD ["a", "b"] extra'), 'CMD').command, { form: 'shell', script: '["a", "b"] extra' });
  assert.deepEqual(only(df('FROM a', 'CMD python3 -m http.server'), 'CMD').command, { form: 'shell', script: 'python3 -m http.server' });
  errorAt(df('FROM a', 'CMD ["a", 1]'), 2, /array of strings only/);
  assert.deepEqual(only(df('FROM a', 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]'), 'SHELL').argv, ['/bin/bash', '-o', 'pipefail', '-c']);
  errorAt(df('FROM a', 'SHELL /bin/bash -c'), 2, /SHELL needs a JSON array/);
  errorAt(df('FROM a', 'SHELL []'), 2, /SHELL needs a JSON array/);
  assert.deepEqual(only(df('FROM a', 'VOLUME ["/data", "/var/log"]'), 'VOLUME').paths, ['/data', '/var/log']);
  assert.deepEqual(only(df('FROM a', 'VOLUME /data  /var/log'), 'VOLUME').paths, ['/data', '/var/log']);
  errorAt(df('FROM a', 'VOLUME [""]'), 2, /VOLUME paths cannot be empty/);
  const c = only(df('FROM a', 'COPY ["my file.txt", "b", "/dst dir/"]'), 'COPY');
  assert.deepEqual([c.sources, c.dest], [['my file.txt', 'b'], '/dst dir/']);
  const c2 = only(df('FROM a', 'COPY --from=build ["/out", "/app"]'), 'COPY');
  assert.deepEqual([c2.from, c2.sources, c2.dest], ['build', ['/out'], '/app']);
  errorAt(df('FROM a', 'COPY ["only-one"]'), 2, /COPY needs a source and a destination/);
});

test('FROM: image, AS name, --platform, global ARGs, stages referring to stages', () => {
  const d = parseDockerfile(
    df(
      'ARG BASE=debian:bookworm-slim',
      'ARG TARGET VERSION="1.0"',
      'FROM --platform=$BUILDPLATFORM ${BASE} AS build',
      'ARG VERSION',
      'RUN make',
      'FROM build',
      'FROM scratch AS final',
      'COPY --from=0 /x /x',
    ),
  );
  assert.deepEqual(d.globalArgs, [{ name: 'BASE', default: 'debian:bookworm-slim' }, { name: 'TARGET' }, { name: 'VERSION', default: '"1.0"' }]);
  assert.deepEqual(
    d.stages.map((s) => ({ index: s.index, name: s.name, from: s.from, platform: s.platform, line: s.line })),
    [
      { index: 0, name: 'build', from: '${BASE}', platform: '$BUILDPLATFORM', line: 3 },
      { index: 1, name: undefined, from: 'build', platform: undefined, line: 6 },
      { index: 2, name: 'final', from: 'scratch', platform: undefined, line: 7 },
    ],
  );
  assert.deepEqual(d.stages[0]!.instructions[0], { kind: 'ARG', line: 4, text: 'ARG VERSION', args: [{ name: 'VERSION' }] });
  assert.equal(d.stages[2]!.instructions[0]!.kind === 'COPY' && d.stages[2]!.instructions[0]!.from, '0');
  assert.ok(!('name' in d.stages[1]!), 'an unnamed stage has no name key');
  errorAt(df('FROM a AS one', 'FROM b AS One'), 2, /stage name "one" is already used on line 1/);
  errorAt(df('FROM a AS 1st'), 1, /"1st" is not a valid stage name/);
  errorAt(df('FROM a AS b$c'), 1, /not a valid stage name/);
  errorAt(df('FROM a b'), 1, /FROM needs an image and optionally AS <name>/);
  errorAt(df('FROM a AS'), 1, /FROM needs an image/);
  errorAt(df('FROM'), 1, /FROM needs an image/);
  errorAt(df('FROM --platform linux/amd64 a'), 1, /FROM --platform needs a value/);
  errorAt(df('FROM --plattform=linux/amd64 a'), 1, /FROM has no --plattform option; it accepts --platform/);
});

test('COPY and ADD flags', () => {
  const c = only(df('FROM a', 'COPY --link --chmod=0755 --chown=app:app bin/ lib/ /opt/'), 'COPY');
  assert.deepEqual(c, {
    kind: 'COPY',
    line: 2,
    text: 'COPY --link --chmod=0755 --chown=app:app bin/ lib/ /opt/',
    sources: ['bin/', 'lib/'],
    dest: '/opt/',
    chown: 'app:app',
    chmod: '0755',
    link: true,
  });
  assert.equal(only(df('FROM a', 'COPY --link=false a /b'), 'COPY').link, false);
  assert.equal(only(df('FROM a', 'COPY --link=TRUE a /b'), 'COPY').link, true);
  // Flag values may be quoted; the quotes go (as in Docker).
  assert.equal(only(df('FROM a', 'COPY --chown="app:app" a /b'), 'COPY').chown, 'app:app');
  const add = only(df('FROM a', 'ADD --chown=1:2 --link app.tar.gz /srv/'), 'ADD');
  assert.deepEqual([add.kind, add.sources, add.dest, add.chown, add.link, add.from], ['ADD', ['app.tar.gz'], '/srv/', '1:2', true, undefined]);
  errorAt(df('FROM a', 'COPY --form=build /a /b'), 2, /COPY has no --form option; it accepts --from, --chown, --chmod, --link/);
  errorAt(df('FROM a', 'ADD --from=build /a /b'), 2, /ADD has no --from option/);
  errorAt(df('FROM a', 'COPY --from build /a /b'), 2, /COPY --from needs a value/);
  errorAt(df('FROM a', 'COPY --link=maybe a /b'), 2, /--link takes true or false, not "maybe"/);
  errorAt(df('FROM a', 'COPY --link= a /b'), 2, /--link= needs a value/);
  errorAt(df('FROM a', 'COPY --from=a --from=b /a /b'), 2, /--from is given twice/);
  // Docker does not expand --from; it refuses variables there.
  errorAt(df('FROM a', 'COPY --from=$STAGE /a /b'), 2, /--from cannot use variables/);
  errorAt(df('FROM a', 'COPY --from=\\${X} /a /b'), 2, /--from cannot use variables/);
  errorAt(df('FROM a', 'COPY app.py'), 2, /^Dockerfile line 2: COPY needs a source and a destination, e.g. COPY app.py \/app\/$/);
  errorAt(df('FROM a', 'ADD'), 2, /ADD needs a source and a destination/);
  // Flags on instructions that take none.
  errorAt(df('FROM a', 'ENV --x=1 A=b'), 2, /ENV has no --x option; ENV takes no options/);
  errorAt(df('FROM a', 'CMD --help'), 2, /CMD has no --help option/);
  errorAt(df('FROM a', 'WORKDIR --x /a'), 2, /WORKDIR has no --x option/);
  // A bare -- ends the flags.
  assert.deepEqual(only(df('FROM a', 'COPY --link -- --odd-name /b'), 'COPY').sources, ['--odd-name']);
});

test('RUN --mount=type=secret: options, defaults, env-only secrets', () => {
  const r = only(
    df(
      'FROM a',
      'RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,required=true,mode=0440,uid=1000,gid=1001 \\',
      '    --mount=type=secret,id=aws \\',
      '    npm ci',
    ),
    'RUN',
  );
  assert.deepEqual(r.command, { form: 'shell', script: 'npm ci' });
  assert.deepEqual(r.secrets, [
    { id: 'npmrc', target: '/root/.npmrc', required: true, mode: 0o440, uid: 1000, gid: 1001 },
    { id: 'aws', target: '/run/secrets/aws', required: false, mode: 0o400, uid: 0, gid: 0 },
  ]);
  const s = (mount: string) => only(df('FROM a', `RUN --mount=${mount} true`), 'RUN').secrets[0];
  assert.deepEqual(s('type=secret,target=/etc/ssl/key.pem,required'), { id: 'key.pem', target: '/etc/ssl/key.pem', required: true, mode: 0o400, uid: 0, gid: 0 });
  assert.deepEqual(s('type=secret,id=tok,env=TOKEN'), { id: 'tok', target: '', required: false, mode: 0o400, uid: 0, gid: 0, env: 'TOKEN' });
  assert.deepEqual(s('type=secret,id=tok,env=TOKEN,dst=/t'), { id: 'tok', target: '/t', required: false, mode: 0o400, uid: 0, gid: 0, env: 'TOKEN' });
  assert.deepEqual(s('TYPE=Secret,src=a/b,required=false,ro'), { id: 'a/b', target: '/run/secrets/b', required: false, mode: 0o400, uid: 0, gid: 0 });
  assert.deepEqual(s('type=secret,\\"id=x,y\\"'), { id: 'x,y', target: '/run/secrets/x,y', required: false, mode: 0o400, uid: 0, gid: 0 });
  assert.deepEqual(s('"type=secret,id=quoted"'), { id: 'quoted', target: '/run/secrets/quoted', required: false, mode: 0o400, uid: 0, gid: 0 });
  assert.deepEqual(s('type=secret,id=\'lit\''), { id: 'lit', target: '/run/secrets/lit', required: false, mode: 0o400, uid: 0, gid: 0 });
  assert.deepEqual(only(df('FROM a', 'RUN --mount=type=secret,id=a ["cat", "/run/secrets/a"]'), 'RUN').command, { form: 'exec', argv: ['cat', '/run/secrets/a'] });

  errorAt(df('FROM a', 'RUN --mount=required,type=secret,id=a true'), 2, /put type=secret before "required"/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,mode=0999 true'), 2, /mode=0999 is not a valid octal mode/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,uid=-1 true'), 2, /uid=-1 is not a valid number/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,required=yes true'), 2, /required=yes: the value must be true or false/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,color=red true'), 2, /unknown option "color"/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,from=build true'), 2, /cannot have from=/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,bogus true'), 2, /"bogus" must be a key=value pair/);
  errorAt(df('FROM a', 'RUN --mount=type=secret true'), 2, /needs an id or a target/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a,src=b true'), 2, /takes id or source, not both/);
  errorAt(df('FROM a', 'RUN --mount=type=volume,id=a true'), 2, /type "volume" is unknown/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a\\"b true'), 2, /not a comma-separated list/);
  errorAt(df('FROM a', 'RUN --mount= true'), 2, /not a comma-separated list/);
  errorAt(df('FROM a', 'RUN --mount=type=secret,id=a'), 2, /RUN needs a command/);
  errorAt(df('FROM a', 'RUN --mnt=type=secret true'), 2, /RUN has no --mnt option; it accepts --mount, --network, --security, --device/);
});

test('UnsupportedFeature: other mount types, RUN --network/--security, heredocs, COPY/ADD extras, remote ADD', () => {
  unsupportedAt(df('FROM a', 'RUN --mount=type=cache,target=/root/.cache pip install x'), 2, /RUN --mount=type=cache/);
  unsupportedAt(df('FROM a', 'RUN --mount=target=/src make'), 2, /RUN --mount=type=bind/);
  unsupportedAt(df('FROM a', 'RUN --mount=type=bind,from=build,source=/out,target=/in make'), 2, /type=bind/);
  unsupportedAt(df('FROM a', 'RUN --mount=type=tmpfs,target=/tmp make'), 2, /type=tmpfs/);
  unsupportedAt(df('FROM a', 'RUN --mount=type=ssh git clone x'), 2, /type=ssh/);
  unsupportedAt(df('FROM a', 'RUN --mount=type=secret,id=$SECRET_ID true'), 2, /variable \(\$SECRET_ID\) in a RUN --mount option/);
  unsupportedAt(df('FROM a', 'RUN --network=none make test'), 2, /RUN --network/);
  unsupportedAt(df('FROM a', 'RUN --security=insecure make'), 2, /RUN --security/);
  unsupportedAt(df('FROM a', 'RUN --device=nvidia.com/gpu=all nvidia-smi'), 2, /RUN --device/);
  unsupportedAt(df('FROM a', 'RUN <<EOF', 'echo hi', 'EOF'), 2, /heredoc/);
  unsupportedAt(df('FROM a', 'RUN python3 <<-"PY"', '\tprint(1)', '\tPY'), 2, /heredoc/);
  unsupportedAt(df('FROM a', 'RUN cat << EOF > /x', 'hi', 'EOF'), 2, /heredoc/);
  unsupportedAt(df('FROM a', 'RUN 3<<EOF cat /dev/fd/3', 'hi', 'EOF'), 2, /heredoc/);
  unsupportedAt(df('FROM a', 'COPY <<EOF /etc/app.conf', 'x=1', 'EOF'), 2, /heredoc \(<<EOF\) in COPY/);
  unsupportedAt(df('FROM a', 'ADD <<EOF /x', 'EOF'), 2, /heredoc/);
  unsupportedAt(df('FROM a', 'ONBUILD RUN <<EOF', 'echo', 'EOF'), 2, /heredoc \(<<EOF\) in an ONBUILD trigger/);
  // Not heredocs: here-strings, << inside a word, quoted, exec form, other instructions.
  assert.equal(only(df('FROM a', 'RUN cat <<< "hi"'), 'RUN').kind, 'RUN');
  assert.equal(only(df('FROM a', 'RUN echo $((1<<4))'), 'RUN').kind, 'RUN');
  assert.equal(only(df('FROM a', 'RUN echo "<<EOF"'), 'RUN').kind, 'RUN');
  assert.equal(only(df('FROM a', 'RUN ["sh", "-c", "cat <<EOF"]'), 'RUN').kind, 'RUN');
  assert.equal(only(df('FROM a', 'LABEL note="a <<EOF b"'), 'LABEL').kind, 'LABEL');
  unsupportedAt(df('FROM a', 'COPY --parents src/*/pkg.json /app/'), 2, /COPY --parents/);
  assert.equal(only(df('FROM a', 'COPY --parents=false a /b'), 'COPY').kind, 'COPY');
  unsupportedAt(df('FROM a', 'COPY --exclude=*.md . /app/'), 2, /COPY --exclude/);
  unsupportedAt(df('FROM a', 'ADD --exclude=*.md . /app/'), 2, /ADD --exclude/);
  unsupportedAt(df('FROM a', 'ADD --checksum=sha256:abc https://example.com/a.tgz /'), 2, /ADD --checksum/);
  unsupportedAt(df('FROM a', 'ADD --keep-git-dir=true git@github.com:o/r.git /src'), 2, /ADD --keep-git-dir/);
  unsupportedAt(df('FROM a', 'ADD --unpack=false a.tar /x/'), 2, /ADD --unpack/);
  unsupportedAt(df('FROM a', 'ADD https://example.com/app.tgz /srv/'), 2, /ADD from a URL or a git repository/);
  unsupportedAt(df('FROM a', 'ADD local.txt git@github.com:moby/buildkit.git /src/'), 2, /ADD from a URL/);
  unsupportedAt(df('FROM a', 'ADD ["http://example.com/x", "/x"]'), 2, /ADD from a URL/);
  // COPY of a path that looks like a URL is still a local path.
  assert.deepEqual(only(df('FROM a', 'COPY https-certs/ /certs/'), 'COPY').sources, ['https-certs/']);
  // An unknown flag is an error even next to an unsupported feature.
  errorAt(df('FROM a', 'RUN --network=none --bogus make'), 2, /RUN has no --bogus option/);
  // The line is the instruction's first line.
  unsupportedAt(df('FROM a', 'RUN echo a', 'RUN apt-get update \\', ' && cat <<EOF', 'x', 'EOF'), 3, /heredoc/);
});

test('isRemoteSource: URLs and git sources', () => {
  for (const s of ['http://x/y', 'HTTPS://x/y', 'git://host/repo', 'ssh://git@host/r.git', 'git@github.com:o/r.git', 'github.com/o/r']) assert.ok(isRemoteSource(s), s);
  for (const s of ['app.py', './http://x', 'git/hub', 'https', '/srv/github.com/x']) assert.ok(!isRemoteSource(s), s);
});

test('ENV and LABEL: name=value pairs and the legacy "name value" form, stored raw', () => {
  const e = only(df('FROM a', 'ENV K=V K2="v 2" K3=a\\ b K4=\'$HOME\' K5= K6=${K:-x}'), 'ENV');
  assert.deepEqual(e.pairs, [
    ['K', 'V'],
    ['K2', '"v 2"'],
    ['K3', 'a\\ b'],
    ['K4', "'$HOME'"],
    ['K5', ''],
    ['K6', '${K:-x}'],
  ]);
  const lookup = env({ HOME: '/root', K: 'V' });
  assert.deepEqual(
    e.pairs.map(([k, v]) => [expandWord(k, lookup), expandWord(v, lookup)]),
    [
      ['K', 'V'],
      ['K2', 'v 2'],
      ['K3', 'a b'],
      ['K4', '$HOME'],
      ['K5', ''],
      ['K6', 'V'],
    ],
  );
  const legacy = only(df('FROM a', 'ENV GREETING hello   "big"  world'), 'ENV');
  assert.deepEqual(legacy.pairs, [['GREETING', 'hello   "big"  world']]);
  assert.equal(expandWord(legacy.pairs[0]![1], lookup), 'hello   big  world');
  const label = only(df('FROM a', 'LABEL "com.example.vendor"="ACME Inc" \\', '      version=1.0 description="multi word"'), 'LABEL');
  assert.deepEqual(label.pairs, [
    ['"com.example.vendor"', '"ACME Inc"'],
    ['version', '1.0'],
    ['description', '"multi word"'],
  ]);
  assert.equal(expandWord(label.pairs[0]![0], lookup), 'com.example.vendor');
  assert.deepEqual(only(df('FROM a', 'LABEL maintainer someone@example.com'), 'LABEL').pairs, [['maintainer', 'someone@example.com']]);
  errorAt(df('FROM a', 'ENV A=1 B'), 2, /ENV "B" is not of the form name=value/);
  errorAt(df('FROM a', 'ENV ONLYNAME'), 2, /ENV ONLYNAME has no value; write ENV ONLYNAME=<value>/);
  errorAt(df('FROM a', 'ENV =x'), 2, /ENV names cannot be blank/);
  errorAt(df('FROM a', 'ENV'), 2, /ENV needs at least one name=value pair/);
  errorAt(df('FROM a', 'LABEL'), 2, /LABEL needs at least one name=value pair/);
  errorAt(df('FROM a', 'LABEL a=1 =2'), 2, /LABEL names cannot be blank/);
});

test('builder-style expansion: ENV values against the ARG/ENV state at their step', () => {
  const d = parseDockerfile(df('ARG VERSION=1.2', 'FROM a', 'ARG VERSION', 'ARG DIR=/opt/app-${VERSION}', 'ENV APP_HOME=$DIR PATH="$DIR/bin:$PATH"', 'WORKDIR ${APP_HOME}'));
  const state: Record<string, string> = { PATH: '/usr/bin' };
  const lookup = (n: string) => state[n];
  const globals = Object.fromEntries(d.globalArgs.map((a) => [a.name, a.default === undefined ? undefined : expandWord(a.default, lookup)]));
  for (const ins of d.stages[0]!.instructions) {
    if (ins.kind === 'ARG') {
      for (const a of ins.args) {
        const v = a.default !== undefined ? expandWord(a.default, lookup) : globals[a.name];
        if (v !== undefined) state[expandWord(a.name, lookup)] = v;
      }
    } else if (ins.kind === 'ENV') {
      const expanded = ins.pairs.map(([k, v]) => [expandWord(k, lookup), expandWord(v, lookup)] as const);
      for (const [k, v] of expanded) state[k] = v;
    } else if (ins.kind === 'WORKDIR') {
      assert.equal(expandWord(ins.path, lookup), '/opt/app-1.2');
    }
  }
  assert.equal(state.PATH, '/opt/app-1.2/bin:/usr/bin');
});

test('ARG: several per line, defaults raw, blank names rejected', () => {
  assert.deepEqual(only(df('FROM a', 'ARG A B=2 C= D="x y" E=${B}'), 'ARG').args, [
    { name: 'A' },
    { name: 'B', default: '2' },
    { name: 'C', default: '' },
    { name: 'D', default: '"x y"' },
    { name: 'E', default: '${B}' },
  ]);
  errorAt(df('FROM a', 'ARG =x'), 2, /ARG names cannot be blank/);
  errorAt(df('FROM a', 'ARG'), 2, /ARG needs a name/);
  errorAt(df('ARG --x A', 'FROM a'), 1, /ARG has no --x option/);
});

test('WORKDIR, USER, STOPSIGNAL, EXPOSE keep their raw arguments', () => {
  const ins = body(df('FROM a', 'WORKDIR /my app/$DIR', 'USER ${UID}:1000', 'STOPSIGNAL SIGINT', 'EXPOSE 80/tcp 53/udp ${PORTS}'));
  assert.deepEqual(
    ins.map((i) => (i.kind === 'WORKDIR' ? i.path : i.kind === 'USER' ? i.user : i.kind === 'STOPSIGNAL' ? i.signal : i.kind === 'EXPOSE' ? i.ports : null)),
    ['/my app/$DIR', '${UID}:1000', 'SIGINT', ['80/tcp', '53/udp', '${PORTS}']],
  );
  const ports = (ins[3] as Extract<Instruction, { kind: 'EXPOSE' }>).ports;
  assert.deepEqual(
    ports.flatMap((p) => expandWords(p, env({ PORTS: '8080 9090/udp' }))),
    ['80/tcp', '53/udp', '8080', '9090/udp'],
  );
  errorAt(df('FROM a', 'WORKDIR'), 2, /WORKDIR needs an argument, e.g. WORKDIR \/app/);
  errorAt(df('FROM a', 'USER   '), 2, /USER needs an argument/);
  errorAt(df('FROM a', 'STOPSIGNAL'), 2, /STOPSIGNAL needs an argument/);
  errorAt(df('FROM a', 'EXPOSE'), 2, /EXPOSE needs an argument/);
  errorAt(df('FROM a', 'VOLUME'), 2, /VOLUME needs a path/);
  errorAt(df('FROM a', 'RUN'), 2, /RUN needs a command, e.g. RUN apt-get update/);
  errorAt(df('FROM a', 'CMD'), 2, /CMD needs a command/);
  errorAt(df('FROM a', 'ENTRYPOINT  '), 2, /ENTRYPOINT needs a command/);
});

test('HEALTHCHECK: options as Go durations, retries, NONE', () => {
  const h = only(df('FROM a', 'HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s --start-interval=2s --retries=3 \\', '  CMD curl -f http://localhost/ || exit 1'), 'HEALTHCHECK');
  assert.deepEqual(h, {
    kind: 'HEALTHCHECK',
    line: 2,
    text: 'HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s --start-interval=2s --retries=3   CMD curl -f http://localhost/ || exit 1',
    none: false,
    command: { form: 'shell', script: 'curl -f http://localhost/ || exit 1' },
    intervalNs: 90e9,
    timeoutNs: 5e8,
    startPeriodNs: 1.5e9,
    startIntervalNs: 2e9,
    retries: 3,
  });
  assert.deepEqual(only(df('FROM a', 'healthcheck cmd ["/bin/check", "--quick"]'), 'HEALTHCHECK'), {
    kind: 'HEALTHCHECK',
    line: 2,
    text: 'healthcheck cmd ["/bin/check", "--quick"]',
    none: false,
    command: { form: 'exec', argv: ['/bin/check', '--quick'] },
  });
  const ns = (d: string) => {
    const i = only(df('FROM a', `HEALTHCHECK --interval=${d} CMD true`), 'HEALTHCHECK');
    return i.none ? undefined : i.intervalNs;
  };
  assert.equal(ns('1h'), 3600e9);
  assert.equal(ns('2h45m0.5s'), (2 * 3600 + 45 * 60 + 0.5) * 1e9);
  assert.equal(ns('1ms'), 1e6);
  assert.equal(ns('1000us'), 1e6);
  assert.equal(ns('1500µs'), 1.5e6);
  assert.equal(ns('.5s'), 5e8);
  assert.equal(ns('0'), 0);
  assert.equal(ns('0s'), 0);
  assert.deepEqual(only(df('FROM a', 'HEALTHCHECK NONE'), 'HEALTHCHECK'), { kind: 'HEALTHCHECK', line: 2, text: 'HEALTHCHECK NONE', none: true });
  assert.equal(only(df('FROM a', 'HEALTHCHECK none'), 'HEALTHCHECK').none, true);
  errorAt(df('FROM a', 'HEALTHCHECK --interval=30 CMD true'), 2, /--interval=30 is not a duration; write it like 30s, 1m30s or 500ms/);
  errorAt(df('FROM a', 'HEALTHCHECK --timeout=abc CMD true'), 2, /--timeout=abc is not a duration/);
  errorAt(df('FROM a', 'HEALTHCHECK --timeout=5x CMD true'), 2, /--timeout=5x is not a duration/);
  errorAt(df('FROM a', 'HEALTHCHECK --interval=. CMD true'), 2, /is not a duration/);
  errorAt(df('FROM a', 'HEALTHCHECK --interval= CMD true'), 2, /is not a duration/);
  errorAt(df('FROM a', 'HEALTHCHECK --start-period=10us CMD true'), 2, /shorter than 1ms/);
  errorAt(df('FROM a', 'HEALTHCHECK --interval=-5s CMD true'), 2, /shorter than 1ms/);
  errorAt(df('FROM a', 'HEALTHCHECK --retries=-1 CMD true'), 2, /--retries cannot be negative/);
  errorAt(df('FROM a', 'HEALTHCHECK --retries=two CMD true'), 2, /--retries=two is not a whole number/);
  errorAt(df('FROM a', 'HEALTHCHECK --retries=99999999999 CMD true'), 2, /not a whole number/);
  errorAt(df('FROM a', 'HEALTHCHECK --period=1s CMD true'), 2, /HEALTHCHECK has no --period option; it accepts --interval, --timeout, --start-period, --start-interval, --retries/);
  errorAt(df('FROM a', 'HEALTHCHECK CMD'), 2, /HEALTHCHECK CMD needs a command/);
  errorAt(df('FROM a', 'HEALTHCHECK CMD []'), 2, /HEALTHCHECK CMD needs a command/);
  errorAt(df('FROM a', 'HEALTHCHECK curl localhost'), 2, /HEALTHCHECK type "curl" is unknown/);
  errorAt(df('FROM a', 'HEALTHCHECK NONE now'), 2, /HEALTHCHECK NONE takes no arguments/);
  errorAt(df('FROM a', 'HEALTHCHECK --interval=5s NONE'), 2, /HEALTHCHECK NONE takes no options/);
  errorAt(df('FROM a', 'HEALTHCHECK'), 2, /HEALTHCHECK needs CMD <command> or NONE/);
});

test('MAINTAINER becomes LABEL maintainer, kept literal', () => {
  const m = only(df('FROM a', "MAINTAINER Jane O'Neil <jane@$example.com>"), 'LABEL');
  assert.equal(m.text, "MAINTAINER Jane O'Neil <jane@$example.com>");
  assert.equal(m.pairs.length, 1);
  assert.equal(m.pairs[0]![0], 'maintainer');
  assert.equal(expandWord(m.pairs[0]![1], () => 'EXPANDED'), "Jane O'Neil <jane@$example.com>");
  const b = only(df('# escape=`', 'FROM a', "MAINTAINER it's `me"), 'LABEL');
  assert.equal(expandWord(b.pairs[0]![1], () => 'X', '`'), "it's `me");
  errorAt(df('FROM a', 'MAINTAINER'), 2, /MAINTAINER needs an argument/);
});

test('ONBUILD: the trigger as written; chained, FROM and unknown triggers rejected', () => {
  assert.deepEqual(only(df('FROM a', 'onbuild   COPY --chown=1:1 . /app/'), 'ONBUILD'), {
    kind: 'ONBUILD',
    line: 2,
    text: 'onbuild   COPY --chown=1:1 . /app/',
    trigger: 'COPY --chown=1:1 . /app/',
  });
  errorAt(df('FROM a', 'ONBUILD ONBUILD RUN x'), 2, /ONBUILD ONBUILD is not allowed/);
  errorAt(df('FROM a', 'ONBUILD FROM x'), 2, /FROM is not allowed as an ONBUILD trigger/);
  errorAt(df('FROM a', 'ONBUILD MAINTAINER x'), 2, /MAINTAINER is not allowed as an ONBUILD trigger/);
  errorAt(df('FROM a', 'ONBUILD RUNN x'), 2, /unknown instruction "RUNN"/);
  errorAt(df('FROM a', 'ONBUILD'), 2, /ONBUILD needs an instruction/);
  // The trigger is checked like any instruction; what only the native builder lacks is fine there.
  errorAt(df('FROM a', 'ONBUILD COPY app.py'), 2, /COPY needs a source and a destination/);
  errorAt(df('FROM a', 'ONBUILD ENV ONLYNAME'), 2, /ENV ONLYNAME has no value/);
  errorAt(df('FROM a', 'ONBUILD RUN --bogus x'), 2, /RUN has no --bogus option/);
  assert.equal(only(df('FROM a', 'ONBUILD RUN --mount=type=cache,target=/root/.cache pip install .'), 'ONBUILD').trigger, 'RUN --mount=type=cache,target=/root/.cache pip install .');
  errorAt(df('FROM a', 'ONBUILD --x RUN a'), 2, /ONBUILD has no --x option/);
});

test('file-level errors: empty, no FROM, instructions before FROM, unknown instructions', () => {
  errorAt('', 1, /has no instructions/);
  errorAt(df('# just a comment', '', '   '), 1, /has no instructions/);
  errorAt(df('ARG A=1', 'ARG B'), 1, /has no FROM/);
  errorAt(df('# syntax=docker/dockerfile:1', 'ARG A', 'RUN echo hi', 'FROM a'), 3, /^Dockerfile line 3: RUN comes before the first FROM; only ARG may come before FROM$/);
  errorAt(df('ENV A=1'), 1, /ENV comes before the first FROM/);
  errorAt(df('RUN --mount=type=cache,target=/x true', 'FROM a'), 1, /RUN comes before the first FROM/);
  errorAt(df('FROM a', '', 'RUN echo \\', '  hi', 'RUNN echo'), 5, /unknown instruction "RUNN"/);
  // A continuation that swallows the next instruction keeps Docker's meaning: one RUN.
  assert.deepEqual(only(df('FROM a', 'RUN echo \\', '', 'COPY a b'), 'RUN').command, { form: 'shell', script: 'echo COPY a b' });
});

test('expandWord: variables, defaults, nesting, escapes and quotes', () => {
  const lookup = env({ A: 'a', EMPTY: '', SP: 'x  y', P: '/usr/local/bin/python3.11', NAME_2: 'n2', 'Ä': 'umlaut' });
  const cases: Array<[string, string]> = [
    ['$A', 'a'],
    ['${A}', 'a'],
    ['pre${A}post', 'preapost'],
    ['$A$A', 'aa'],
    ['$NAME_2', 'n2'],
    ['$NAME_2x', ''],
    ['${NAME_2}x', 'n2x'],
    ['$Ä', 'umlaut'],
    ['$UNSET', ''],
    ['${UNSET}', ''],
    ['x$', 'x$'],
    ['$/', '$/'],
    ['${UNSET:-dflt}', 'dflt'],
    ['${EMPTY:-dflt}', 'dflt'],
    ['${EMPTY-dflt}', ''],
    ['${UNSET-dflt}', 'dflt'],
    ['${A:-dflt}', 'a'],
    ['${A:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${UNSET+alt}', ''],
    ['${UNSET:-${A}}', 'a'],
    ['${UNSET:-${UNSET2:-${A}-deep}}', 'a-deep'],
    ['${A:+${UNSET:-in}}', 'in'],
    ['${UNSET:-two words}', 'two words'],
    ['${UNSET:-"q}"}', 'q}'],
    ['\\$A', '$A'],
    ['\\${A}', '${A}'],
    ['a\\ b', 'a b'],
    ['a\\\\b', 'a\\b'],
    ['trailing\\', 'trailing'],
    ["'$A'", '$A'],
    ["'a\\b'", 'a\\b'],
    ['"$A"', 'a'],
    ['"${A} and \'$A\'"', "a and 'a'"],
    ['"a\\"b"', 'a"b'],
    ['"a\\$A"', 'a$A'],
    ['"a\\nb"', 'a\\nb'],
    ['"a\\\\b"', 'a\\b'],
    ['x"y"\'z\'', 'xyz'],
    ['${P##*/}', 'python3.11'],
    ['${P#*/}', 'usr/local/bin/python3.11'],
    ['${P%.*}', '/usr/local/bin/python3'],
    ['${P%%/*}', ''],
    ['${P%/*}', '/usr/local/bin'],
    ['${P/python/py}', '/usr/local/bin/py3.11'],
    ['${P//o/0}', '/usr/l0cal/bin/pyth0n3.11'],
    ['${P/n?/X}', '/usr/local/biXpython3.11'],
    ['${P/#/X}', '/usr/local/bin/python3.11'],
    ['${UNSET/a/b}', ''],
  ];
  for (const [word, want] of cases) assert.equal(expandWord(word, lookup), want, word);
  const seen: string[] = [];
  expandWord('$A ${B:-$C} "${D}" \'$E\' \\$F', (n) => {
    seen.push(n);
    return undefined;
  });
  assert.deepEqual(seen, ['A', 'C', 'B', 'D']);
  assert.equal(expandWord('$$ $1 ${10}', env({ $: 'pid', '1': 'one', '10': 'ten' })), 'pid one ten');
});

test('expandWord: errors are DockerfileErrors naming the word', () => {
  const lookup = env({ EMPTY: '' });
  for (const [word, re] of [
    ['${UNSET?}', /UNSET: is not allowed to be unset/],
    ['${UNSET:?must be set}', /UNSET: must be set/],
    ['${EMPTY:?}', /EMPTY: is not allowed to be empty/],
    ['${}', /bad substitution/],
    ['${:-x}', /bad substitution/],
    ['${A', /missing '}'/],
    ['${A:-x', /missing '}'/],
    ['${A*x}', /unsupported modifier \(\*\)/],
    ['${A:x}', /unsupported modifier \(:x\)/],
    ['"open', /matching double-quote/],
    ["'open", /matching single-quote/],
  ] as const) {
    assert.throws(
      () => expandWord(word, lookup),
      (e: unknown) => e instanceof DockerfileError && e.line === 0 && re.test(e.message) && e.message.includes(JSON.stringify(word)),
      word,
    );
  }
  assert.equal(expandWord('${EMPTY?}', lookup), '');
});

test('expandWord with escape=`: backslash is literal, backtick escapes', () => {
  const lookup = env({ A: 'a' });
  assert.equal(expandWord('C:\\Users\\$A', lookup, '`'), 'C:\\Users\\a');
  assert.equal(expandWord('`$A', lookup, '`'), '$A');
  assert.equal(expandWord('"C:\\dir`"x"', lookup, '`'), 'C:\\dir"x');
  assert.equal(expandWord('``', lookup, '`'), '`');
  assert.deepEqual(expandWords('a` b c', lookup, '`'), ['a b', 'c']);
});

test('expandWords: splitting after expansion as Docker does', () => {
  const lookup = env({ SP: ' 80  443/udp ', ONE: 'x', EMPTY: '' });
  assert.deepEqual(expandWords('$SP', lookup), ['80', '443/udp']);
  assert.deepEqual(expandWords('"$SP"', lookup), [' 80  443/udp ']);
  assert.deepEqual(expandWords("a   'b c' d\\ e", lookup), ['a', 'b c', 'd e']);
  assert.deepEqual(expandWords('pre$ONE post', lookup), ['prex', 'post']);
  assert.deepEqual(expandWords('$EMPTY "" \'\' $UNSET x', lookup), ['x']);
  assert.deepEqual(expandWords('${UNSET:-a b}', lookup), ['a', 'b']);
  assert.deepEqual(expandWords('', lookup), []);
});

// Input/output pairs from BuildKit's own lexer tests (frontend/dockerfile/shell/envVarTest and
// wordsTest), so expansion here stays what `docker build` does. "error" means expansion must fail.
const BUILDKIT_WORD_CASES: Array<[string, string]> = [
    ["hello", "hello"],
    ["he'll'o", "hello"],
    ["he'llo", "error"],
    ["he\\'llo", "he'llo"],
    ["he\\\\'llo", "error"],
    ["abc\\tdef", "abctdef"],
    ["\"abc\\tdef\"", "abc\\tdef"],
    ["\"abc\\\\tdef\"", "abc\\tdef"],
    ["'abc\\tdef'", "abc\\tdef"],
    ["hello\\", "hello"],
    ["hello\\\\", "hello\\"],
    ["\"hello", "error"],
    ["\"hello\\\"", "error"],
    ["\"hel'lo\"", "hel'lo"],
    ["'hello", "error"],
    ["'hello\\'", "hello\\"],
    ["'hello\\there'", "hello\\there"],
    ["'hello\\\\there'", "hello\\\\there"],
    ["\"''\"", "''"],
    ["$.", "$."],
    ["he$1x", "hex"],
    ["he$.x", "he$.x"],
    ["he$pwd.", "he."],
    ["he$PWD", "he/home"],
    ["he\\$PWD", "he$PWD"],
    ["he\\\\$PWD", "he\\/home"],
    ["\"he\\$PWD\"", "he$PWD"],
    ["\"he\\\\$PWD\"", "he\\/home"],
    ["\\${}", "${}"],
    ["\\${}aaa", "${}aaa"],
    ["he\\${}", "he${}"],
    ["he\\${}xx", "he${}xx"],
    ["${}", "error"],
    ["${}aaa", "error"],
    ["he${}", "error"],
    ["he${}xx", "error"],
    ["he${hi}", "he"],
    ["he${hi}xx", "hexx"],
    ["he${PWD}", "he/home"],
    ["he${.}", "error"],
    ["he${XXX:-000}xx", "he000xx"],
    ["he${PWD:-000}xx", "he/homexx"],
    ["he${XXX:-$PWD}xx", "he/homexx"],
    ["he${XXX:-${PWD:-yyy}}xx", "he/homexx"],
    ["he${XXX:-${YYY:-yyy}}xx", "heyyyxx"],
    ["he${XXX:YYY}", "error"],
    ["he${XXX?}", "error"],
    ["he${XXX:?}", "error"],
    ["he${PWD?}", "he/home"],
    ["he${PWD:?}", "he/home"],
    ["he${NULL?}", "he"],
    ["he${NULL:?}", "error"],
    ["he${XXX:+${PWD}}xx", "hexx"],
    ["he${PWD:+${XXX}}xx", "hexx"],
    ["he${PWD:+${SHELL}}xx", "hebashxx"],
    ["he${XXX:+000}xx", "hexx"],
    ["he${PWD:+000}xx", "he000xx"],
    ["'he${XX}'", "he${XX}"],
    ["\"he${PWD}\"", "he/home"],
    ["\"he'$PWD'\"", "he'/home'"],
    ["\"$PWD\"", "/home"],
    ["'$PWD'", "$PWD"],
    ["'\\$PWD'", "\\$PWD"],
    ["'\"hello\"'", "\"hello\""],
    ["'he\\$PWD'", "he\\$PWD"],
    ["he${PWD", "error"],
    ["he${PWD:=000}xx", "error"],
    ["he${PWD:+${PWD}:}xx", "he/home:xx"],
    ["he${XXX:-\\$PWD:}xx", "he$PWD:xx"],
    ["he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"],
    ["$KOREAN", "한국어"],
    ["${{aaa}", "error"],
    ["${aaa}}", "}"],
    ["${aaa", "error"],
    ["${{aaa:-bbb}", "error"],
    ["${aaa:-bbb}}", "bbb}"],
    ["${aaa:-bbb", "error"],
    ["${aaa:-bbb}", "bbb"],
    ["${aaa:-${bbb:-ccc}}", "ccc"],
    ["${aaa:-bbb ${foo}", "error"],
    ["${aaa:-bbb {foo}", "bbb {foo"],
    ["${:}", "error"],
    ["${:-bbb}", "error"],
    ["${:+bbb}", "error"],
    ["$1", ""],
    ["${1}", ""],
    ["${1:+bbb}", ""],
    ["${1:-bbb}", "bbb"],
    ["$9", ""],
    ["${9}", ""],
    ["${9:+bbb}", ""],
    ["${9:-bbb}", "bbb"],
    ["$999", ""],
    ["${999}", ""],
    ["${999:+bbb}", ""],
    ["${999:-bbb}", "bbb"],
    ["$999aaa", "aaa"],
    ["${999}aaa", "aaa"],
    ["${999:+bbb}aaa", "aaa"],
    ["${999:-bbb}aaa", "bbbaaa"],
    ["$001", ""],
    ["$001aaa", "aaa"],
    ["$@", ""],
    ["${@}", ""],
    ["${@:+bbb}", ""],
    ["${@:-bbb}", "bbb"],
    ["$@@@", "@@"],
    ["$@aaa", "aaa"],
    ["${@}aaa", "aaa"],
    ["${@:+bbb}aaa", "aaa"],
    ["${@:-bbb}aaa", "bbbaaa"],
    ["$*", ""],
    ["${*}", ""],
    ["${*:+bbb}", ""],
    ["${*:-bbb}", "bbb"],
    ["$#", ""],
    ["${#}", ""],
    ["${#:+bbb}", ""],
    ["${#:-bbb}", "bbb"],
    ["$?", ""],
    ["${?}", ""],
    ["${?:+bbb}", ""],
    ["${?:-bbb}", "bbb"],
    ["$-", ""],
    ["${-}", ""],
    ["${-:+bbb}", ""],
    ["${-:-bbb}", "bbb"],
    ["$$", ""],
    ["${$}", ""],
    ["${$:+bbb}", ""],
    ["${$:-bbb}", "bbb"],
    ["$!", ""],
    ["${!}", ""],
    ["${!:+bbb}", ""],
    ["${!:-bbb}", "bbb"],
    ["$0", ""],
];

const BUILDKIT_WORDS_CASES: Array<[string, string[]]> = [
    ["hello", ["hello"]],
    ["hello${hi}bye", ["hellohibye"]],
    ["hello${space}bye", ["helloabc", "defbye"]],
    ["hello\"${space}\"bye", ["helloabc  defbye"]],
    ["hello \"${space}\"bye", ["hello", "abc  defbye"]],
    ["hello${leading}def", ["hello", "ab", "cdef"]],
    ["hello\"${leading}\" def", ["hello  ab c", "def"]],
    ["hello\"${leading}\"", ["hello  ab c"]],
    ["hello${leading}", ["hello", "ab", "c"]],
    ["hello${trailing}", ["helloab", "c"]],
    ["hello${trailing}d", ["helloab", "c", "d"]],
    ["hello\"${trailing}\"d", ["helloab c   d"]],
    ["hel\"lo${trailing}\"", ["helloab c   "]],
    ["hello\" there  \"", ["hello there  "]],
    ["hello there", ["hello", "there"]],
    ["hello\\ there", ["hello there"]],
    ["hello\" there", ["error"]],
    ["hello\\\" there", ["hello\"", "there"]],
    ["hello\"\\\\there\"", ["hello\\there"]],
    ["hello\"\\there\"", ["hello\\there"]],
    ["hello'\\\\there'", ["hello\\\\there"]],
    ["hello'\\there'", ["hello\\there"]],
    ["hello'$there'", ["hello$there"]],
];

test('expandWord and expandWords agree with BuildKit’s lexer test vectors', () => {
  const wordEnv = env({ PWD: '/home', SHELL: 'bash', KOREAN: '한국어', NULL: '' });
  for (const [source, want] of BUILDKIT_WORD_CASES) {
    if (want === 'error') assert.throws(() => expandWord(source, wordEnv), DockerfileError, source);
    else assert.equal(expandWord(source, wordEnv), want, source);
  }
  const wordsEnv = env({ hi: 'hi', space: 'abc  def', leading: '  ab c', trailing: 'ab c   ' });
  for (const [source, want] of BUILDKIT_WORDS_CASES) {
    if (want[0] === 'error') assert.throws(() => expandWords(source, wordsEnv), DockerfileError, source);
    else assert.deepEqual(expandWords(source, wordsEnv), want, source);
  }
});
