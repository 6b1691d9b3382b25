export const volumesMigrations = [
  `CREATE TABLE volumes (
     id TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     name TEXT NOT NULL,
     size_gb INTEGER NOT NULL,
     -- The filesystem lags size_gb after an extend while the machine runs;
     -- it is grown at the next attach.
     fs_size_gb INTEGER NOT NULL,
     state TEXT NOT NULL,
     -- The attach lock: one machine at a time, kept until that machine is destroyed.
     attached_machine_id TEXT,
     snapshot_retention INTEGER NOT NULL,
     source TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE INDEX volumes_app ON volumes(app, name);
   CREATE INDEX volumes_machine ON volumes(attached_machine_id);
   CREATE TABLE volume_snapshots (
     id TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     volume_id TEXT NOT NULL,
     size_gb INTEGER NOT NULL,
     size INTEGER NOT NULL,
     status TEXT NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL
   );
   CREATE INDEX volume_snapshots_volume ON volume_snapshots(volume_id);`,
];
