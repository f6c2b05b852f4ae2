package baseline

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// fileSystem is what loading and selecting need: the disk (paths as the OS writes them) or
// an fs.FS such as the baseline tree embedded in the binary (slash paths, "." for the root).
type fileSystem interface {
	stat(name string) (fs.FileInfo, error)
	readFile(name string) ([]byte, error)
	readDir(name string) ([]fs.DirEntry, error)
	walkDir(root string, fn fs.WalkDirFunc) error
	join(elem ...string) string
	rel(base, target string) (string, error)
}

type osFS struct{}

func (osFS) stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }
func (osFS) readFile(name string) ([]byte, error)         { return os.ReadFile(name) }
func (osFS) readDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) walkDir(root string, fn fs.WalkDirFunc) error { return filepath.WalkDir(root, fn) }
func (osFS) join(elem ...string) string                   { return filepath.Join(elem...) }
func (osFS) rel(base, target string) (string, error)      { return filepath.Rel(base, target) }

type ioFS struct{ fsys fs.FS }

func (f ioFS) stat(name string) (fs.FileInfo, error)        { return fs.Stat(f.fsys, name) }
func (f ioFS) readFile(name string) ([]byte, error)         { return fs.ReadFile(f.fsys, name) }
func (f ioFS) readDir(name string) ([]fs.DirEntry, error)   { return fs.ReadDir(f.fsys, name) }
func (f ioFS) walkDir(root string, fn fs.WalkDirFunc) error { return fs.WalkDir(f.fsys, root, fn) }
func (ioFS) join(elem ...string) string                     { return path.Join(elem...) }
func (ioFS) rel(base, target string) (string, error) {
	if base == "." {
		return target, nil
	}
	r, err := filepath.Rel(filepath.FromSlash(base), filepath.FromSlash(target))
	return filepath.ToSlash(r), err
}
