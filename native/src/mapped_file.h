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

}  // namespace weft
