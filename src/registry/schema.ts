/**
 * Registry metadata. Blob bytes live once per digest in the content store;
 * these tables say which repository may see which blob, which manifests and
 * tags a repository has, and which upload sessions are open. Times are ms.
 */
export const registryMigrations = [
  `CREATE TABLE registry_repos (
     name TEXT PRIMARY KEY,
     app_id TEXT NOT NULL,          -- the app that owned the name when the repo was created
     created_at INTEGER NOT NULL
   );
   CREATE TABLE registry_blobs (
     digest TEXT PRIMARY KEY,
     size INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     touched_at INTEGER NOT NULL     -- last upload/mount/existence check: gc grace is measured from here
   );
   CREATE TABLE registry_repo_blobs (
     repo TEXT NOT NULL,
     digest TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (repo, digest)
   );
   CREATE INDEX registry_repo_blobs_digest ON registry_repo_blobs(digest);
   CREATE TABLE registry_manifests (
     repo TEXT NOT NULL,
     digest TEXT NOT NULL,
     media_type TEXT NOT NULL,
     size INTEGER NOT NULL,
     subject TEXT,
     artifact_type TEXT,
     annotations TEXT,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (repo, digest)
   );
   CREATE INDEX registry_manifests_subject ON registry_manifests(repo, subject);
   CREATE INDEX registry_manifests_digest ON registry_manifests(digest);
   CREATE TABLE registry_manifest_refs (
     manifest TEXT NOT NULL,        -- content-addressed, so shared by every repo holding it
     ref TEXT NOT NULL,
     PRIMARY KEY (manifest, ref)
   );
   CREATE TABLE registry_tags (
     repo TEXT NOT NULL,
     tag TEXT NOT NULL,
     digest TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (repo, tag)
   );
   CREATE TABLE registry_uploads (
     id TEXT PRIMARY KEY,
     repo TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );`,
  // Tags the pull-through mirror fetched from its upstream (src/registry/pull-through.ts)
  // and when they were last re-resolved. A tag without a row was pushed here
  // (e.g. by `hangar images seed`) and is never replaced from upstream.
  `CREATE TABLE registry_pull_through (
     repo TEXT NOT NULL,
     tag TEXT NOT NULL,
     checked_at INTEGER NOT NULL,
     PRIMARY KEY (repo, tag)
   );`,
];
