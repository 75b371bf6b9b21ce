void ecgedge_layer_done(int layer);  /* qemu_check.c: per-layer timing */
