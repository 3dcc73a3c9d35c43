"""Traces and libCacheSim's miss ratios on them, for nodus's simulator test.

Usage: libcachesim_reference.py OUT_DIR SIZES

Writes OUT_DIR/<trace>.oracleGeneral.bin (and <trace>.csv for one trace)
and prints JSON: for each trace, each policy and each size in SIZES (comma
separated), libCacheSim's object miss ratio with every object counted one
(ignore_obj_size); and for one trace of objects of 1-64 KiB, with objects
weighted by their size in a cache of SIZE x WEIGHTED_UNIT bytes ("weighted":
true). Run with the pinned libcachesim venv (make setup).
"""
import json
import os
import struct
import sys

import libcachesim as lcs

POLICIES = {"lru": lcs.LRU, "arc": lcs.ARC, "s3fifo": lcs.S3FIFO, "sieve": lcs.Sieve}


def zipf(alpha, objects, requests, seed):
    gen = lcs.create_zipf_requests(
        num_objects=objects, num_requests=requests, alpha=alpha, obj_size=1, seed=seed
    )
    return [int(r.obj_id) for r in gen]


def with_scans(ids, scan_len, every):
    """Zipf traffic with one-time scans (a backup, a find) mixed in."""
    out, next_scan_id = [], 10**9
    for i, x in enumerate(ids):
        out.append(x)
        if i % every == every - 1:
            out.extend(range(next_scan_id, next_scan_id + scan_len))
            next_scan_id += scan_len
    return out


# Cache sizes of the weighted trace: SIZES in units of this many bytes.
WEIGHTED_UNIT = 32 * 1024


def object_size(x):
    """1-64 KiB, fixed per object (a docroot of small files)."""
    return 1024 * (1 + (x * 2654435761) % 64)


def write_oracle(path, ids, size=lambda x: 4000):
    with open(path, "wb") as f:
        for t, x in enumerate(ids):
            # Unweighted: obj_size 4000 is ignored (every object counts one).
            f.write(struct.pack("<IQIq", t, x, size(x), -1))


def write_csv(path, ids):
    with open(path, "w") as f:
        f.write("time,obj_id,obj_size\n")
        for t, x in enumerate(ids):
            f.write(f"{t},{x},4096\n")


def miss_ratio(policy, size, path, trace_type, params):
    reader = lcs.TraceReader(path, trace_type, params)
    return POLICIES[policy](size).process_trace(reader)[0]


def main():
    out, sizes = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
    traces = {
        "zipf-1.0": zipf(1.0, 10_000, 100_000, 42),
        "zipf-0.8-scans": with_scans(zipf(0.8, 20_000, 100_000, 7), 300, 5_000),
        "zipf-1.2-small": zipf(1.2, 2_000, 50_000, 3),
    }
    result = []
    for name, ids in traces.items():
        oracle = os.path.join(out, name + ".oracleGeneral.bin")
        write_oracle(oracle, ids)
        files = [("oracle-general", oracle, lcs.TraceType.ORACLE_GENERAL_TRACE,
                  lcs.ReaderInitParam(ignore_obj_size=True))]
        if name == "zipf-1.0":
            csv = os.path.join(out, name + ".csv")
            write_csv(csv, ids)
            p = lcs.ReaderInitParam(ignore_obj_size=True, has_header=True,
                                    has_header_set=True, delimiter=",")
            p.time_field, p.obj_id_field, p.obj_size_field = 1, 2, 3
            files.append(("csv", csv, lcs.TraceType.CSV_TRACE, p))
        for fmt, path, trace_type, params in files:
            for policy in POLICIES:
                for size in sizes:
                    result.append({
                        "trace": path, "format": fmt, "policy": policy, "size": size,
                        "weighted": False,
                        "miss_ratio": miss_ratio(policy, size, path, trace_type, params),
                    })
    weighted = os.path.join(out, "zipf-0.9-sized.oracleGeneral.bin")
    write_oracle(weighted, with_scans(zipf(0.9, 5_000, 100_000, 11), 100, 10_000), object_size)
    params = lcs.ReaderInitParam(ignore_obj_size=False)
    for policy in POLICIES:
        for size in sizes:
            result.append({
                "trace": weighted, "format": "oracle-general", "policy": policy,
                "size": size * WEIGHTED_UNIT, "weighted": True,
                "miss_ratio": miss_ratio(policy, size * WEIGHTED_UNIT, weighted,
                                         lcs.TraceType.ORACLE_GENERAL_TRACE, params),
            })
    json.dump(result, sys.stdout)


main()
