// The scale-out simulation's commands, taken from deploy/kubernetes/: the
// sweep Job's pod command (run once per JOB_COMPLETION_INDEX) and the merge
// Job's, with the volumes' mount paths moved to local directories.
import { configMapData, mergeJob, relocate, sweepJob } from './manifests';

export interface ScaleOutCommands {
  /** argv of every sweep pod (a /bin/sh -c script reading JOB_COMPLETION_INDEX). */
  sweep: string[];
  merge: string[];
  shards: number;
  /** targets.txt from the ConfigMap. */
  targets: string;
}

/** dirs: mount path → local directory, e.g. { '/data': tmp + '/data', '/etc/halfopen': tmp + '/etc' }. */
export function scaleOutCommands(dirs: Record<string, string>): ScaleOutCommands {
  const job = sweepJob();
  return {
    sweep: relocate(job.argv, dirs),
    merge: relocate(mergeJob().argv, dirs),
    shards: job.shards,
    targets: configMapData('halfopen-targets')['targets.txt'],
  };
}
