"""parquet_pyarrow.py - the pyarrow peer of bench_parquet: rewrite cdcflow's
benchmark file with pyarrow (same codec, level, row group size, one thread),
timing only the writes, then time a single-threaded read of both files.

usage: parquet_pyarrow.py CDCFLOW_FILE OUT_DIR
"""
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    src, out_dir = sys.argv[1], sys.argv[2]
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    ours = pq.ParquetFile(src)
    md = ours.metadata
    rg_rows = md.row_group(0).num_rows
    rows = md.num_rows
    dst = os.path.join(out_dir, "pyarrow.parquet")
    if os.path.exists(dst):
        os.remove(dst)

    t_write = c_write = 0.0
    writer = None
    for i in range(md.num_row_groups):
        table = ours.read_row_group(i, use_threads=False)      # not timed
        t0, c0 = time.perf_counter(), time.process_time()
        if writer is None:
            writer = pq.ParquetWriter(dst, table.schema, compression="zstd", compression_level=3,
                                      use_dictionary=True, write_statistics=True)
        writer.write_table(table, row_group_size=rg_rows)
        t_write += time.perf_counter() - t0
        c_write += time.process_time() - c0
        del table
    t0, c0 = time.perf_counter(), time.process_time()
    writer.close()
    t_write += time.perf_counter() - t0
    c_write += time.process_time() - c0
    size = os.path.getsize(dst)

    def timed_read(path):
        f = pq.ParquetFile(path)
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        for i in range(f.metadata.num_row_groups):
            n += f.read_row_group(i, use_threads=False).num_rows
        return time.process_time() - c0, time.perf_counter() - t0, n

    c_read, t_read, n = timed_read(dst)
    c_read_ours, t_read_ours, n2 = timed_read(src)
    assert n == rows and n2 == rows, (n, n2, rows)
    ours_size = os.path.getsize(src)
    print(f"pyarrow {pa.__version__} (1 thread): {rows} rows, zstd(3), row groups of {rg_rows} rows")
    print(f"  write: {c_write:.2f} s cpu ({t_write:.2f} s wall)  {rows / c_write / 1e6:.2f} M rows/s")
    print(f"  read:  {c_read:.2f} s cpu ({t_read:.2f} s wall)  {rows / c_read / 1e6:.2f} M rows/s"
          f"  (its own file)")
    print(f"  read:  {c_read_ours:.2f} s cpu ({t_read_ours:.2f} s wall)  "
          f"{rows / c_read_ours / 1e6:.2f} M rows/s  (cdcflow's file)")
    print(f"  file:  {size / 1e6:.1f} MB")
    print(f"RESULT pyarrow write_cpu_s={c_write:.3f} read_cpu_s={c_read:.3f} write_s={t_write:.3f} "
          f"read_s={t_read:.3f} bytes={size} cdcflow_bytes={ours_size} size_ratio={ours_size / size:.3f}")
    os.remove(dst)


if __name__ == "__main__":
    main()
