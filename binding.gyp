{
  "targets": [
    {
      "target_name": "stratum",
      "sources": [
        "native/addon.c",
        "native/batch.c",
        "native/digest.c",
        "native/files.c",
        "native/mount.c",
        "native/ops.c",
        "native/resolve.c",
        "native/tls.c"
      ],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
