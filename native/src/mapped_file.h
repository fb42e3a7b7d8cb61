// Read-only memory mappings, one per file per process: every model (and so every engine
// instance, on any worker thread) that reads a file shares its mapping.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "weft_engine.h"

namespace weft {

struct MappedFile {
  std::string path;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  ~MappedFile();
};

Status mapped_file_open(const std::string& path, std::shared_ptr<MappedFile>* out);

// Drops the pages of the mapping this process has touched (they stay in the page cache and fault
// back in on the next read). After a load has copied the weights into packed buffers, the file's
// pages would otherwise stay in the process's resident set twice over.
void mapped_file_drop_pages(const MappedFile& f);

}  // namespace weft
