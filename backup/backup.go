package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/posthouse/posthouse/internal/durable"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
	"github.com/posthouse/posthouse/queue"
)

// External is a file outside data_dir that the configuration needs: the
// configuration file itself, a certificate or key.
type External struct {
	Path string // absolute, or relative to the working directory
	Role string // "config", "tls.cert_file", …
}

// Options say what to back up and where.
type Options struct {
	DataDir string
	// Dir holds the snapshots: each backup adds one dated subdirectory.
	Dir string
	// External files are saved under the snapshot's external/. Those inside
	// DataDir are skipped: they are in data/ already.
	External []External
	// Copy copies message files even where they could be hard-linked to
	// DataDir's (Dir on the same file system), so the backup shares no
	// inode with the live data. Files unchanged since the previous
	// snapshot are still linked to it.
	Copy bool
	// Keep, if above zero, is how many snapshots to keep: older ones are
	// removed after a successful backup.
	Keep int
	// Logger gets a line per problem tolerated (files expunged during the
	// backup); nil: discard.
	Logger *slog.Logger
	// Now is the clock for the snapshot's name; nil: time.Now.
	Now func() time.Time
}

// Result is what one backup did.
type Result struct {
	Snapshot string // the new snapshot directory
	Previous string // the snapshot unchanged files were linked from ("" for none)
	// Databases copied, and message (and spool) files, by how each got
	// there: Reused (hard link to the previous snapshot), Linked (hard link
	// to data_dir), Copied.
	Databases, Messages    int
	Reused, Linked, Copied int
	Files, Externals       int   // other files of data_dir, files outside it
	Bytes, CopiedBytes     int64 // all files' sizes; bytes read and written by copies
	Retries, Expunged      int   // snapshots taken again; messages trimmed
	Pruned                 []string
	Duration               time.Duration
}

// snapshotName matches the directories Run makes: the UTC time, and a
// counter when two backups start within one second.
var snapshotName = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$`)

const (
	partialPrefix = ".partial-"
	// maxSnapshotTries is how often a database is copied again when files
	// it references vanished before they were saved (see the package doc).
	maxSnapshotTries = 5
)

// run is the state of one backup.
type run struct {
	ctx      context.Context
	opts     Options
	log      *slog.Logger
	dataDir  string
	snap     string            // the snapshot directory being written
	prevDir  string            // the previous snapshot, "" for none
	prev     map[string]*Entry // its entries by path
	manifest Manifest
	res      Result
	// linkSource is false once a hard link to data_dir failed (another
	// file system): later files are copied without trying.
	linkSource bool
	dirs       map[string]bool // directories made in snap
	saved      map[string]int  // message entries in the manifest by path
}

// Run makes a snapshot of data_dir in a new subdirectory of opts.Dir while
// the server runs. See the package doc for what it holds and why it is
// consistent.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("backup: data_dir %s: not a directory", dataDir)
	}
	if in, err := inside(opts.Dir, dataDir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	} else if in {
		return nil, fmt.Errorf("backup: %s is inside data_dir %s: choose a directory outside it", opts.Dir, dataDir)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer unlock()
	removePartials(opts.Dir, log)

	r := &run{ctx: ctx, opts: opts, log: log, dataDir: dataDir, linkSource: !opts.Copy,
		dirs: map[string]bool{}, saved: map[string]int{}}
	if prev, err := Latest(opts.Dir); err == nil {
		m, err := ReadManifest(prev)
		if err != nil {
			return nil, fmt.Errorf("backup: previous snapshot: %w", err)
		}
		r.prevDir = prev
		r.prev = make(map[string]*Entry, len(m.Entries))
		for i := range m.Entries {
			r.prev[m.Entries[i].Path] = &m.Entries[i]
		}
		r.res.Previous = prev
	} else if !errors.Is(err, ErrNoManifest) {
		return nil, fmt.Errorf("backup: %w", err)
	}

	name := newSnapshotName(opts.Dir, opts.Now())
	partial := filepath.Join(opts.Dir, partialPrefix+name)
	if err := os.Mkdir(partial, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	r.snap = partial
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(partial)
		}
	}()
	r.manifest.Header = Header{Format: manifestFormat, Version: manifestVersion, Created: opts.Now().UTC(), DataDir: dataDir}
	if r.prevDir != "" {
		r.manifest.Header.Previous = filepath.Base(r.prevDir)
	}

	if err := r.saveDataDir(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := r.saveExternal(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := writeManifest(partial, &r.manifest); err != nil {
		return nil, fmt.Errorf("backup: manifest: %w", err)
	}
	if err := syncTree(partial); err != nil {
		return nil, fmt.Errorf("backup: sync: %w", err)
	}
	final := filepath.Join(opts.Dir, name)
	if err := os.Rename(partial, final); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	ok = true
	durable.SyncDir(opts.Dir)
	r.res.Snapshot = final
	if opts.Keep > 0 {
		r.res.Pruned = prune(opts.Dir, opts.Keep, log)
	}
	r.res.Duration = time.Since(start)
	return &r.res, nil
}

// newSnapshotName names a snapshot started at now, unique in dir.
func newSnapshotName(dir string, now time.Time) string {
	base := now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		_, err1 := os.Lstat(filepath.Join(dir, name))
		_, err2 := os.Lstat(filepath.Join(dir, partialPrefix+name))
		if errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// Snapshots lists the complete snapshots in dir, oldest first.
func Snapshots(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || !snapshotName.MatchString(e.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), ManifestName)); err == nil {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.SortFunc(out, func(a, b string) int { return compareNames(filepath.Base(a), filepath.Base(b)) })
	return out, nil
}

// compareNames orders snapshot names by time, then counter.
func compareNames(a, b string) int {
	ta, ca, _ := strings.Cut(a, "-")
	tb, cb, _ := strings.Cut(b, "-")
	if c := strings.Compare(ta, tb); c != 0 {
		return c
	}
	if len(ca) != len(cb) {
		return len(ca) - len(cb)
	}
	return strings.Compare(ca, cb)
}

// Latest returns the newest complete snapshot in dir, or dir itself when it
// is a snapshot; the error wraps ErrNoManifest when there is none.
func Latest(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
		return dir, nil
	}
	list, err := Snapshots(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(list) == 0) {
		return "", fmt.Errorf("%s: %w", dir, ErrNoManifest)
	}
	if err != nil {
		return "", err
	}
	return list[len(list)-1], nil
}

// removePartials removes snapshots an interrupted backup left.
func removePartials(dir string, log *slog.Logger) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), partialPrefix) {
			log.Warn("removing an interrupted backup", "dir", e.Name())
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// prune removes all but the newest keep snapshots; files they share with
// newer ones stay (hard links).
func prune(dir string, keep int, log *slog.Logger) []string {
	list, err := Snapshots(dir)
	if err != nil || len(list) <= keep {
		return nil
	}
	var gone []string
	for _, s := range list[:len(list)-keep] {
		if err := os.RemoveAll(s); err != nil {
			log.Error("remove old snapshot", "dir", s, "err", err)
			continue
		}
		gone = append(gone, s)
	}
	return gone
}

// item is something of data_dir to save, found by the walk.
type item struct {
	rel  string // slash-separated, relative to data_dir
	kind string // KindDir, KindDatabase, KindFile
	mode fs.FileMode
}

// walk lists what of data_dir a backup saves, in walk order (a directory
// before what it holds). Message and spool files are not listed: they are
// saved as their databases reference them.
func (r *run) walk() ([]item, error) {
	var items []item
	err := filepath.WalkDir(r.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p != r.dataDir {
				return nil // removed while we walk (a finished queue entry)
			}
			return err
		}
		rel, err := filepath.Rel(r.dataDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		skip, contents := skipped(rel, d)
		if skip {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		if d.IsDir() {
			items = append(items, item{rel: rel, kind: KindDir, mode: info.Mode().Perm()})
			if !contents {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			r.log.Warn("not a regular file; left out of the backup", "path", p)
			return nil
		}
		db, err := isDatabase(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		kind := KindFile
		if db {
			kind = KindDatabase
		}
		items = append(items, item{rel: rel, kind: kind, mode: info.Mode().Perm()})
		return nil
	})
	return items, err
}

// skipped says whether the walk leaves out the entry at rel, and for a
// directory kept, whether its contents are walked (the directories of
// message and spool files are kept empty: their files come from their
// databases).
func skipped(rel string, d fs.DirEntry) (skip, contents bool) {
	name := d.Name()
	parts := strings.Split(rel, "/")
	if d.IsDir() {
		switch {
		case rel == "spool": // SMTP DATA being received: not yet accepted
			return true, false
		case rel == "queue/tmp": // spool files being written
			return true, false
		case rel == "queue":
			return false, false
		case len(parts) == 2 && parts[0] == "accounts" && strings.HasPrefix(name, ".removed-"):
			return true, false // an account being removed
		case len(parts) == 5 && parts[0] == "accounts" && parts[2] == "maildir" &&
			(name == "cur" || name == "new" || name == "tmp"):
			return false, false
		}
		return false, true
	}
	switch {
	case strings.HasSuffix(name, "-wal"), strings.HasSuffix(name, "-shm"), strings.HasSuffix(name, "-journal"):
		return true, false // part of a database: the copy includes it
	case sqlitedb.IsUpgradeCopy(name), sqlitedb.IsUpgradeCopy(strings.TrimSuffix(name, ".part")):
		return true, false // a copy kept before a schema upgrade
	case strings.Contains(name, ".corrupt-"):
		return true, false // an index moved aside and rebuilt
	case durable.IsTemp(name):
		return true, false // a rewrite in progress
	}
	return false, false
}

// saveDataDir saves the walk's items: directories first, then databases
// (each with the files it references), then other files.
func (r *run) saveDataDir() error {
	items, err := r.walk()
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.kind != KindDir {
			continue
		}
		dst := r.dst(it.rel)
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return err
		}
		r.dirs[dst] = true
		r.add(Entry{Path: dataPath(it.rel), Kind: KindDir, Mode: uint32(it.mode)})
	}
	for _, it := range items {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if it.kind == KindDatabase {
			if err := r.saveDatabase(it); err != nil {
				return err
			}
		}
	}
	for _, it := range items {
		if it.kind != KindFile {
			continue
		}
		sum, n, err := copyFile(filepath.Join(r.dataDir, filepath.FromSlash(it.rel)), r.dst(it.rel), 0o600)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the walk
		} else if err != nil {
			return err
		}
		r.res.Files++
		r.res.Bytes += n
		r.res.CopiedBytes += n
		r.add(Entry{Path: dataPath(it.rel), Kind: KindFile, Mode: uint32(it.mode), Size: n, SHA256: sum})
	}
	return nil
}

// referencing is a database whose rows name files: the functions of the
// package that owns its schema list them in a copy and trim from a copy
// the rows whose files are gone.
type referencing struct {
	files func(ctx context.Context, db string) ([]string, error)
	trim  func(ctx context.Context, db string, missing []string) error
	base  string // what the files' paths are relative to, in data_dir
}

// referencingOf says whether the database at rel references files.
func referencingOf(rel string) (referencing, bool) {
	parts := strings.Split(rel, "/")
	switch {
	case rel == "queue.sqlite":
		return referencing{queue.SnapshotFiles, queue.TrimSnapshot, ""}, true
	case len(parts) == 3 && parts[0] == "accounts" && parts[2] == "index.sqlite":
		return referencing{maildir.SnapshotFiles, maildir.TrimSnapshot, parts[0] + "/" + parts[1]}, true
	}
	return referencing{}, false
}

// testHookCopied, set by tests, runs after each copy of a database (rel
// in data_dir, try from 1), before its files are saved.
var testHookCopied func(rel string, try int)

// saveDatabase copies one database, then the files it references. When
// some of those are gone by the time they are saved (expunged or moved
// after the copy), the database is copied again, up to maxSnapshotTries
// times; what the last copy still misses is trimmed from it (see the
// package doc).
func (r *run) saveDatabase(it item) error {
	src := filepath.Join(r.dataDir, filepath.FromSlash(it.rel))
	dst := r.dst(it.rel)
	ref, hasFiles := referencingOf(it.rel)
	var fetched map[string]bool // files saved for earlier copies
	for try := 1; ; try++ {
		if err := sqlitedb.Copy(r.ctx, src, dst); err != nil {
			if errors.Is(err, os.ErrNotExist) || !fileExists(src) {
				os.Remove(dst)
				return nil // removed since the walk (an account removed)
			}
			return err
		}
		if testHookCopied != nil {
			testHookCopied(it.rel, try)
		}
		if !hasFiles {
			break
		}
		files, err := ref.files(r.ctx, dst)
		if err != nil {
			return err
		}
		if fetched == nil {
			fetched = make(map[string]bool, len(files))
		}
		var missing []string
		for _, f := range files {
			rel := path.Join(ref.base, f)
			if !filepath.IsLocal(filepath.FromSlash(rel)) {
				return fmt.Errorf("%s references %q, outside data_dir", it.rel, f)
			}
			if fetched[rel] {
				continue
			}
			present, err := r.saveMessage(rel)
			if err != nil {
				return err
			}
			if present {
				fetched[rel] = true
			} else {
				missing = append(missing, f)
			}
		}
		if len(missing) == 0 {
			// Files saved for an earlier copy that this one no longer
			// references (expunged in between) leave the snapshot.
			if try > 1 {
				want := make(map[string]bool, len(files))
				for _, f := range files {
					want[path.Join(ref.base, f)] = true
				}
				for rel := range fetched {
					if !want[rel] {
						r.unsave(rel)
					}
				}
			}
			break
		}
		if try < maxSnapshotTries {
			r.res.Retries++
			continue
		}
		r.log.Warn("files expunged while the backup ran; left out", "db", it.rel, "count", len(missing))
		r.res.Expunged += len(missing)
		if err := ref.trim(r.ctx, dst, missing); err != nil {
			return err
		}
		break
	}
	sum, n, err := hashFile(dst)
	if err != nil {
		return err
	}
	r.res.Databases++
	r.res.Bytes += n
	r.add(Entry{Path: dataPath(it.rel), Kind: KindDatabase, Mode: uint32(it.mode), Size: n, SHA256: sum})
	return nil
}

// saveMessage saves one message or spool file: a hard link to the previous
// snapshot's copy when it has this file, else a hard link to data_dir, else
// a copy. present is false when the file is gone from data_dir.
func (r *run) saveMessage(rel string) (present bool, err error) {
	src := filepath.Join(r.dataDir, filepath.FromSlash(rel))
	dst := r.dst(rel)
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s: not a regular file", src)
	}
	if err := r.mkdirFor(dst); err != nil {
		return false, err
	}
	e := Entry{Path: dataPath(rel), Kind: KindMessage, Mode: uint32(fi.Mode().Perm()), Size: fi.Size()}
	// Message files never change once written, and their names are never
	// reused: the previous snapshot's file of that name and size is this
	// one. It was there when fi was taken, so this backup stays consistent.
	if p := r.prev[e.Path]; p != nil && p.Kind == KindMessage && p.Size == fi.Size() {
		if err := os.Link(filepath.Join(r.prevDir, filepath.FromSlash(e.Path)), dst); err == nil {
			e.SHA256 = p.SHA256
			r.res.Reused++
			r.addMessage(e)
			return true, nil
		}
	}
	if r.linkSource {
		err := os.Link(src, dst)
		if err == nil {
			e.SHA256, _, err = hashFile(dst)
			if err != nil {
				return false, err
			}
			r.res.Linked++
			r.addMessage(e)
			return true, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if !isCrossDevice(err) {
			return false, err
		}
		r.linkSource = false
	}
	sum, n, err := copyFile(src, dst, fi.Mode().Perm())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	e.SHA256, e.Size = sum, n
	r.res.Copied++
	r.res.CopiedBytes += n
	r.addMessage(e)
	return true, nil
}

// addMessage adds a saved message file to the manifest.
func (r *run) addMessage(e Entry) {
	r.res.Messages++
	r.res.Bytes += e.Size
	r.saved[e.Path] = len(r.manifest.Entries)
	r.add(e)
}

// unsave removes a saved message file that the final copy of its database
// does not reference.
func (r *run) unsave(rel string) {
	p := dataPath(rel)
	i, ok := r.saved[p]
	if !ok {
		return
	}
	os.Remove(r.dst(rel))
	r.manifest.Entries[i].Kind = "" // dropped when the manifest is written
	delete(r.saved, p)
	r.res.Messages--
}

func (r *run) add(e Entry) { r.manifest.Entries = append(r.manifest.Entries, e) }

// dst is where data_dir's rel goes in the snapshot.
func (r *run) dst(rel string) string {
	return filepath.Join(r.snap, "data", filepath.FromSlash(rel))
}

func (r *run) mkdirFor(dst string) error {
	dir := filepath.Dir(dst)
	if r.dirs[dir] {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// A directory made after the walk (a mailbox created since) goes into
	// the manifest too, parents first.
	var made []string
	for d := dir; !r.dirs[d] && d != r.snap && d != filepath.Dir(d); d = filepath.Dir(d) {
		made = append(made, d)
	}
	for i := len(made) - 1; i >= 0; i-- {
		r.dirs[made[i]] = true
		rel, err := filepath.Rel(filepath.Join(r.snap, "data"), made[i])
		if err != nil || !filepath.IsLocal(rel) {
			continue
		}
		r.add(Entry{Path: dataPath(filepath.ToSlash(rel)), Kind: KindDir, Mode: 0o700})
	}
	return nil
}

// dataPath is the manifest path of data_dir's rel.
func dataPath(rel string) string {
	if rel == "" {
		return "data"
	}
	return "data/" + rel
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// saveExternal copies the configuration and the files it names that live
// outside data_dir into external/.
func (r *run) saveExternal() error {
	used := map[string]bool{}
	for _, x := range r.opts.External {
		if x.Path == "" {
			continue
		}
		abs, err := filepath.Abs(x.Path)
		if err != nil {
			return err
		}
		if in, err := inside(abs, r.dataDir); err == nil && in {
			continue
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("%s %s: %w", x.Role, abs, err)
		}
		name := filepath.Base(abs)
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%d-%s", i, filepath.Base(abs))
		}
		used[name] = true
		dir := filepath.Join(r.snap, "external")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		sum, n, err := copyFile(abs, filepath.Join(dir, name), 0o600)
		if err != nil {
			return fmt.Errorf("%s %s: %w", x.Role, abs, err)
		}
		r.res.Externals++
		r.res.Bytes += n
		r.res.CopiedBytes += n
		r.add(Entry{Path: "external/" + name, Kind: KindExternal, Mode: uint32(fi.Mode().Perm()), Size: n, SHA256: sum,
			Source: abs, Role: x.Role})
	}
	return nil
}
