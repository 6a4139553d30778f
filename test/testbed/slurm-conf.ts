// slurm.conf for a private one-node cluster (settings known to work on Debian 12, Slurm 22.05).
import { join } from "node:path";

export interface SlurmConfParams {
  dir: string;
  clusterName: string;
  nodeName: string;
  ctldPort: number;
  slurmdPort: number;
  mungeSocket: string;
  cpus: number;
  realMemory: number;
  minJobAge: number;
  /** Address clients and slurmd use for slurmctld (default: localhost). */
  ctldAddr?: string;
  /** Address slurmctld uses for slurmd (default: the node name). */
  nodeAddr?: string;
}

export function renderSlurmConf(p: SlurmConfParams): string {
  const d = (...parts: string[]) => join(p.dir, ...parts);
  // slurmctld accepts "localhost" as its own name whatever the hostname; the address is what
  // clients and slurmd connect to.
  const ctldHost = p.ctldAddr ? `localhost(${p.ctldAddr})` : "localhost";
  const nodeAddr = p.nodeAddr ? ` NodeAddr=${p.nodeAddr}` : "";
  return [
    `ClusterName=${p.clusterName}`,
    `SlurmctldHost=${ctldHost}`,
    `SlurmctldPort=${p.ctldPort}`,
    `SlurmdPort=${p.slurmdPort}`,
    "SlurmUser=root",
    "SlurmdUser=root",
    "AuthType=auth/munge",
    "CredType=cred/munge",
    `AuthInfo=socket=${p.mungeSocket}`,
    "ProctrackType=proctrack/linuxproc",
    "TaskPlugin=task/none",
    "JobAcctGatherType=jobacct_gather/none",
    "AccountingStorageType=accounting_storage/none",
    "SelectType=select/cons_tres",
    "SelectTypeParameters=CR_Core",
    "MpiDefault=none",
    "ReturnToService=2",
    "MailProg=/bin/true",
    `MinJobAge=${p.minJobAge}`,
    "InactiveLimit=0",
    "KillWait=5",
    "SlurmctldTimeout=30",
    "SlurmdTimeout=60",
    `StateSaveLocation=${d("state")}`,
    `SlurmdSpoolDir=${d("spool")}`,
    `SlurmctldPidFile=${d("slurmctld.pid")}`,
    `SlurmdPidFile=${d("slurmd.pid")}`,
    `SlurmctldLogFile=${d("log", "slurmctld.log")}`,
    `SlurmdLogFile=${d("log", "slurmd.log")}`,
    "SlurmctldDebug=info",
    "SlurmdDebug=info",
    `PlugStackConfig=${d("plugstack.conf")}`,
    `NodeName=${p.nodeName}${nodeAddr} CPUs=${p.cpus} RealMemory=${p.realMemory} State=UNKNOWN`,
    `PartitionName=debug Nodes=${p.nodeName} Default=YES MaxTime=INFINITE State=UP`,
    "",
  ].join("\n");
}
