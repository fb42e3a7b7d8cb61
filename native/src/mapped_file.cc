#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace weft {

MappedFile::~MappedFile() {
  if (data && size) munmap(const_cast<uint8_t*>(data), size);
}

Status mapped_file_open(const std::string& path, std::shared_ptr<MappedFile>* out) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<MappedFile>> open_files;
  std::lock_guard<std::mutex> lock(mu);
  if (auto existing = open_files[path].lock()) {
    *out = existing;
    return Status::Ok();
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(StatusCode::not_found, path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::Error(StatusCode::not_found, path + ": " + std::strerror(errno));
  }
  auto file = std::make_shared<MappedFile>();
  file->path = path;
  file->size = static_cast<uint64_t>(st.st_size);
  if (file->size > 0) {
    void* p = mmap(nullptr, file->size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return Status::Error(StatusCode::internal, path + ": mmap failed: " + std::strerror(errno));
    }
    file->data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid
  open_files[path] = file;
  *out = file;
  return Status::Ok();
}

void mapped_file_drop_pages(const MappedFile& f) {
  if (f.data && f.size) madvise(const_cast<uint8_t*>(f.data), f.size, MADV_DONTNEED);
}

}  // namespace weft
