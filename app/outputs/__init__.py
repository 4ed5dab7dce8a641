"""Job outputs: the files a workload leaves in /cortex/output/, collected when it ends into the
artifact store, described by a `job_outputs` row, downloaded through GET /jobs/{id}/output or a
signed, expiring URL."""
