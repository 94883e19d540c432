package git

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Limits of the go-git engine's upload-pack (GoGitEngine.MaxWants and MaxHaves).
const (
	// DefaultMaxWants bounds the want lines of one fetch. Every want must name an
	// advertised reference tip, so a repository with more distinct tips than this
	// cannot be cloned in full by one request.
	DefaultMaxWants = 100_000
	// DefaultMaxHaves bounds the have lines of one fetch's negotiation, all rounds
	// together. A stock client stops after 256 haves without a new common commit
	// once it found one, but it sends its whole history when nothing is common.
	DefaultMaxHaves = 1_000_000
	// readyWalkBudget bounds the commits the "ACK ready" check visits in one
	// session; once spent the engine stops answering "ready" and the client ends
	// the negotiation itself (after 256 haves in vain, or when it runs out).
	readyWalkBudget = 200_000
	// maxTagChain bounds how many tag objects are followed to reach a non-tag.
	maxTagChain = 64
)

// Errors of the go-git engine's upload-pack; the client reads them as "remote
// error: ...".
var (
	// ErrTooManyWants reports a fetch with more want lines than
	// GoGitEngine.MaxWants.
	ErrTooManyWants = errors.New("upload-pack: too many wants")
	// ErrTooManyHaves reports a negotiation with more have lines than
	// GoGitEngine.MaxHaves.
	ErrTooManyHaves = errors.New("upload-pack: too many haves")
	// ErrNotOurRef reports a want that names no advertised reference tip.
	ErrNotOurRef = errors.New("upload-pack: not our ref")
)

// pktReader reads the pkt-lines of an upload-pack request into one buffer of the
// largest payload git allows; the length is checked before anything is read.
type pktReader struct {
	r   io.Reader
	buf []byte
	// beforeRead runs before each line is read: the answers so far must reach the
	// client before the engine waits for it.
	beforeRead func() error
}

func newPktReader(r io.Reader, beforeRead func() error) *pktReader {
	return &pktReader{r: r, buf: make([]byte, MaxPktLine-4), beforeRead: beforeRead}
}

// next returns the next payload without its trailing LF (valid until the next
// call), or flush true for a flush packet. The end of the input is
// io.ErrUnexpectedEOF: a request always ends with a flush or "done".
func (p *pktReader) next() (line []byte, flush bool, err error) {
	if p.beforeRead != nil {
		if err := p.beforeRead(); err != nil {
			return nil, false, err
		}
	}
	var hdr [4]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, fmt.Errorf("upload-pack: reading the request: %w", err)
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return nil, false, fmt.Errorf("%w: upload-pack: pkt-line length %q", ErrBadRequest, hdr[:])
	}
	switch {
	case n == 0:
		return nil, true, nil
	case n < 4:
		return nil, false, fmt.Errorf("%w: upload-pack: pkt-line length %d", ErrBadRequest, n)
	case int(n)-4 > len(p.buf):
		return nil, false, fmt.Errorf("%w: upload-pack: %d bytes (limit %d)", ErrRequestTooLong, n-4, len(p.buf))
	}
	line = p.buf[:n-4]
	if _, err := io.ReadFull(p.r, line); err != nil {
		return nil, false, fmt.Errorf("upload-pack: reading the request: %w", noEOF(err))
	}
	return bytes.TrimSuffix(line, []byte("\n")), false, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseOID parses the 40 hexadecimal digits at the start of s and returns the rest.
func parseOID(s []byte) (plumbing.Hash, []byte, bool) {
	var h plumbing.Hash
	if len(s) < 2*len(h) {
		return h, nil, false
	}
	if _, err := hex.Decode(h[:], s[:2*len(h)]); err != nil {
		return h, nil, false
	}
	return h, s[2*len(h):], true
}

// multi_ack modes, as in upload-pack.c.
const (
	ackSingle = iota
	ackMulti
	ackMultiDetailed
)

// Side-band data per packet: git's LARGE_PACKET_MAX and DEFAULT_PACKET_MAX less the
// length and the band byte.
const (
	sideBand64kData = MaxPktLine - 5
	sideBandData    = 1000 - 5
)

// uploadRequest is the first part of a fetch: the wants and the capabilities.
type uploadRequest struct {
	wants    []plumbing.Hash
	multiAck int  // ackSingle, ackMulti or ackMultiDetailed
	noDone   bool // "no-done": the pack follows "ACK <oid> ready" without "done"
	sideBand int  // data bytes per side-band packet; 0 without side-band
	ofsDelta bool
}

// readWants reads the want lines up to their flush. Each want must be in
// advertised; capabilities are taken from every want line (the client sends them on
// the first), the ones this engine does not advertise are ignored, as git does.
func readWants(pr *pktReader, advertised map[plumbing.Hash]bool, maxWants int) (*uploadRequest, error) {
	req := &uploadRequest{}
	seen := make(map[plumbing.Hash]bool)
	for lines := 0; ; lines++ {
		line, flush, err := pr.next()
		if err != nil {
			return nil, err
		}
		if flush {
			break
		}
		if lines >= maxWants {
			return nil, fmt.Errorf("%w (limit %d)", ErrTooManyWants, maxWants)
		}
		for _, p := range [][]byte{[]byte("shallow "), []byte("deepen"), []byte("filter ")} {
			if bytes.HasPrefix(line, p) {
				return nil, fmt.Errorf("%w: the go-git engine does not support shallow or partial fetches", ErrUnsupported)
			}
		}
		rest, ok := bytes.CutPrefix(line, []byte("want "))
		var h plumbing.Hash
		if ok {
			h, rest, ok = parseOID(rest)
		}
		if !ok || len(rest) > 0 && rest[0] != ' ' {
			return nil, fmt.Errorf("%w: upload-pack: expected a want line, got %q", ErrBadRequest, truncate(line))
		}
		for _, c := range bytes.Fields(rest) {
			switch string(c) {
			case "multi_ack_detailed":
				req.multiAck = ackMultiDetailed
			case "multi_ack":
				req.multiAck = max(req.multiAck, ackMulti)
			case "no-done":
				req.noDone = true
			case "side-band-64k":
				req.sideBand = sideBand64kData
			case "side-band":
				if req.sideBand == 0 {
					req.sideBand = sideBandData
				}
			case "ofs-delta":
				req.ofsDelta = true
			}
		}
		if !advertised[h] {
			return nil, fmt.Errorf("%w: %s", ErrNotOurRef, h)
		}
		if !seen[h] {
			seen[h] = true
			req.wants = append(req.wants, h)
		}
	}
	if len(req.wants) == 0 {
		return nil, fmt.Errorf("%w: upload-pack: capabilities without a want", ErrBadRequest)
	}
	return req, nil
}

// truncate shortens a client line quoted in an error.
func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// commitInfo is what the walks need of a commit.
type commitInfo struct {
	when    int64
	tree    plumbing.Hash
	parents []plumbing.Hash
}

// commitCache decodes commits once per session.
type commitCache struct {
	st storer.EncodedObjectStorer
	m  map[plumbing.Hash]*commitInfo
}

func (c *commitCache) get(h plumbing.Hash) (*commitInfo, error) {
	if ci, ok := c.m[h]; ok {
		return ci, nil
	}
	cm, err := object.GetCommit(c.st, h)
	if err != nil {
		return nil, fmt.Errorf("upload-pack: commit %s: %w", h, err)
	}
	ci := &commitInfo{when: cm.Committer.When.Unix(), tree: cm.TreeHash, parents: cm.ParentHashes}
	c.m[h] = ci
	return ci, nil
}

// peel follows tag objects from h and returns the first non-tag and its type, and
// the tags on the way.
func peel(st storer.EncodedObjectStorer, h plumbing.Hash) (plumbing.Hash, plumbing.ObjectType, []plumbing.Hash, error) {
	var tags []plumbing.Hash
	for range maxTagChain {
		o, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return h, 0, nil, fmt.Errorf("upload-pack: object %s: %w", h, err)
		}
		if o.Type() != plumbing.TagObject {
			return h, o.Type(), tags, nil
		}
		tag, err := object.DecodeTag(st, o)
		if err != nil {
			return h, 0, nil, fmt.Errorf("upload-pack: tag %s: %w", h, err)
		}
		tags = append(tags, h)
		h = tag.Target
	}
	return h, 0, nil, fmt.Errorf("upload-pack: tag chain longer than %d at %s", maxTagChain, h)
}

// negotiation is the haves part of a stateful v0 fetch, after upload-pack.c's
// get_common_commits: per have, "ACK <oid> common" (multi_ack_detailed), "ACK
// <oid> continue" (multi_ack) or a single "ACK <oid>" for the first common object
// (neither); per flush, "ACK <oid> ready" when every want reaches a common commit
// (multi_ack_detailed), then "NAK" (multi_ack, or nothing common yet); on "done",
// "ACK <last common>" or "NAK".
type negotiation struct {
	st       storer.EncodedObjectStorer
	w        *bufio.Writer
	req      *uploadRequest
	maxHaves int

	commits   commitCache
	common    []plumbing.Hash        // existing objects the client has (git's have_obj)
	known     map[plumbing.Hash]bool // existing haves already read
	theyHave  map[plumbing.Hash]bool // commits the client has: the common ones and their parents
	oldest    int64                  // committer time of the oldest common commit
	hasOldest bool
	last      plumbing.Hash // the last common have

	ready   bool // every want reaches a common commit (monotone: once true, stays)
	changed bool // theyHave or oldest changed since the last ready check
	budget  int  // commits the ready check may still visit
	wantOK  map[plumbing.Hash]bool
}

func newNegotiation(st storer.EncodedObjectStorer, w *bufio.Writer, req *uploadRequest, maxHaves int) *negotiation {
	return &negotiation{
		st: st, w: w, req: req, maxHaves: maxHaves,
		commits:  commitCache{st: st, m: make(map[plumbing.Hash]*commitInfo)},
		known:    make(map[plumbing.Hash]bool),
		theyHave: make(map[plumbing.Hash]bool),
		budget:   readyWalkBudget,
		wantOK:   make(map[plumbing.Hash]bool),
	}
}

func (n *negotiation) send(format string, args ...any) error {
	_, err := n.w.Write(pkt(fmt.Sprintf(format, args...)))
	return err
}

// run reads haves until "done" (or, with no-done, until the client may stop) and
// returns the common objects, the pack's exclusions.
func (n *negotiation) run(pr *pktReader) ([]plumbing.Hash, error) {
	var gotCommon, gotOther, sentReady bool
	haves := 0
	for {
		line, flush, err := pr.next()
		if err != nil {
			return nil, err
		}
		if flush {
			if n.req.multiAck == ackMultiDetailed && gotCommon && !gotOther && n.okToGiveUp() {
				sentReady = true
				if err := n.send("ACK %s ready\n", n.last); err != nil {
					return nil, err
				}
			}
			if len(n.common) == 0 || n.req.multiAck != ackSingle {
				if err := n.send("NAK\n"); err != nil {
					return nil, err
				}
			}
			if n.req.noDone && sentReady {
				return n.common, n.send("ACK %s\n", n.last)
			}
			gotCommon, gotOther = false, false
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("have ")); ok {
			if haves++; haves > n.maxHaves {
				return nil, fmt.Errorf("%w (limit %d)", ErrTooManyHaves, n.maxHaves)
			}
			h, tail, ok := parseOID(rest)
			if !ok || len(tail) > 0 {
				return nil, fmt.Errorf("%w: upload-pack: expected an object id, got %q", ErrBadRequest, truncate(line))
			}
			common, err := n.gotOID(h)
			if err != nil {
				return nil, err
			}
			if !common {
				gotOther = true
				if n.req.multiAck != ackSingle && n.okToGiveUp() {
					if n.req.multiAck == ackMultiDetailed {
						sentReady = true
						err = n.send("ACK %s ready\n", h)
					} else {
						err = n.send("ACK %s continue\n", h)
					}
				}
				if err != nil {
					return nil, err
				}
				continue
			}
			gotCommon, n.last = true, h
			switch {
			case n.req.multiAck == ackMultiDetailed:
				err = n.send("ACK %s common\n", h)
			case n.req.multiAck == ackMulti:
				err = n.send("ACK %s continue\n", h)
			case len(n.common) == 1:
				err = n.send("ACK %s\n", h)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if string(line) == "done" {
			if len(n.common) > 0 {
				if n.req.multiAck != ackSingle {
					return n.common, n.send("ACK %s\n", n.last)
				}
				return n.common, nil
			}
			return nil, n.send("NAK\n")
		}
		return nil, fmt.Errorf("%w: upload-pack: expected have or done, got %q", ErrBadRequest, truncate(line))
	}
}

// gotOID records a have and reports whether the object exists here (git's got_oid).
func (n *negotiation) gotOID(h plumbing.Hash) (bool, error) {
	if n.known[h] {
		return true, nil // git's "we knew they have it": common, not added again
	}
	if err := n.st.HasEncodedObject(h); err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("upload-pack: have %s: %w", h, err)
	}
	n.known[h] = true
	o, err := n.st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return false, fmt.Errorf("upload-pack: have %s: %w", h, err)
	}
	if o.Type() == plumbing.CommitObject {
		ci, err := n.commits.get(h)
		if err != nil {
			return false, err
		}
		knew := n.theyHave[h]
		n.theyHave[h] = true
		if !n.hasOldest || ci.when < n.oldest {
			n.oldest, n.hasOldest = ci.when, true
		}
		for _, p := range ci.parents {
			n.theyHave[p] = true
		}
		n.changed = true
		if knew {
			return true, nil
		}
	}
	n.common = append(n.common, h)
	return true, nil
}

// okToGiveUp reports whether every want reaches, through commits no older than the
// oldest common commit, a commit the client has (git's ok_to_give_up). Non-commit
// wants count as reached. The answer is cached until the haves change; the walks of
// one session visit at most readyWalkBudget commits.
func (n *negotiation) okToGiveUp() bool {
	if n.ready {
		return true
	}
	if len(n.common) == 0 || !n.changed || n.budget <= 0 {
		return false
	}
	n.changed = false
	for _, w := range n.req.wants {
		if n.wantOK[w] {
			continue
		}
		if !n.reaches(w) {
			return false
		}
		n.wantOK[w] = true
	}
	n.ready = true
	return true
}

func (n *negotiation) reaches(want plumbing.Hash) bool {
	h, typ, _, err := peel(n.st, want)
	if err != nil {
		return false
	}
	if typ != plumbing.CommitObject {
		return true
	}
	visited := map[plumbing.Hash]bool{h: true}
	stack := []plumbing.Hash{h}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.theyHave[c] {
			return true
		}
		if n.budget--; n.budget < 0 {
			return false
		}
		ci, err := n.commits.get(c)
		if err != nil {
			return false
		}
		for _, p := range ci.parents {
			if n.theyHave[p] {
				return true
			}
			if visited[p] {
				continue
			}
			pi, err := n.commits.get(p)
			if err != nil {
				return false
			}
			if pi.when < n.oldest {
				continue
			}
			visited[p] = true
			stack = append(stack, p)
		}
	}
	return false
}

// walkNode is a commit of the pack's commit walk.
type walkNode struct {
	hash   plumbing.Hash
	info   *commitInfo
	unint  bool // the client has it: reachable from a common commit
	queued bool
	done   bool // its parents are in the walk
}

// commitQueue is a max-heap of commits by committer time.
type commitQueue []*walkNode

func (q commitQueue) Len() int           { return len(q) }
func (q commitQueue) Less(i, j int) bool { return q[i].info.when > q[j].info.when }
func (q commitQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *commitQueue) Push(x any)        { *q = append(*q, x.(*walkNode)) }
func (q *commitQueue) Pop() any {
	old := *q
	n := old[len(old)-1]
	*q = old[:len(old)-1]
	return n
}

// objectWalk selects the objects of a pack.
type objectWalk struct {
	ctx         context.Context
	st          storer.EncodedObjectStorer
	commits     *commitCache
	nodes       map[plumbing.Hash]*walkNode
	queue       commitQueue
	interesting int // queued commits not known to the client
	order       []*walkNode
	exclude     map[plumbing.Hash]bool // objects the client has
	added       map[plumbing.Hash]bool
	out         []plumbing.Hash
	steps       int
}

// selectObjects returns the objects reachable from wants and not from the common
// commits, as git's rev-list --objects does: commits are walked newest first from
// both sides together until only commits the client has are left; the trees of the
// common commits at the boundary are what the client is known to have, and their
// objects are left out. Clock skew can only make it send objects the client has
// (harmless), never leave one out. Non-commit haves are not used.
func selectObjects(ctx context.Context, st storer.EncodedObjectStorer, commits *commitCache, wants, common []plumbing.Hash) ([]plumbing.Hash, error) {
	w := &objectWalk{
		ctx: ctx, st: st, commits: commits,
		nodes:   make(map[plumbing.Hash]*walkNode),
		exclude: make(map[plumbing.Hash]bool),
		added:   make(map[plumbing.Hash]bool),
	}
	var rest []plumbing.Hash // wanted trees and blobs
	for _, h := range common {
		target, typ, _, err := peel(st, h)
		if err != nil {
			return nil, err
		}
		if typ == plumbing.CommitObject {
			if err := w.push(target, true); err != nil {
				return nil, err
			}
		}
	}
	for _, h := range wants {
		target, typ, tags, err := peel(st, h)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			w.add(t)
		}
		switch typ {
		case plumbing.CommitObject:
			err = w.push(target, false)
		case plumbing.TreeObject, plumbing.BlobObject:
			rest = append(rest, target)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := w.limit(); err != nil {
		return nil, err
	}
	for _, n := range w.order {
		if n.unint {
			continue
		}
		for _, p := range n.info.parents {
			if pn := w.nodes[p]; pn != nil && pn.unint {
				if err := w.tree(pn.info.tree, true); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, n := range w.order {
		if n.unint {
			continue
		}
		w.add(n.hash)
		if err := w.tree(n.info.tree, false); err != nil {
			return nil, err
		}
	}
	for _, h := range rest {
		o, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("upload-pack: object %s: %w", h, err)
		}
		if o.Type() == plumbing.TreeObject {
			err = w.tree(h, false)
		} else if !w.exclude[h] {
			w.add(h)
		}
		if err != nil {
			return nil, err
		}
	}
	return w.out, nil
}

// step checks ctx every 256 objects.
func (w *objectWalk) step() error {
	if w.steps++; w.steps%256 == 0 && w.ctx.Err() != nil {
		return context.Cause(w.ctx)
	}
	return nil
}

func (w *objectWalk) add(h plumbing.Hash) {
	if !w.added[h] {
		w.added[h] = true
		w.out = append(w.out, h)
	}
}

// push queues commit h, or marks it (and what the walk found behind it) as the
// client's.
func (w *objectWalk) push(h plumbing.Hash, unint bool) error {
	if n := w.nodes[h]; n != nil {
		if unint && !n.unint {
			w.markUnint(n)
		}
		return nil
	}
	info, err := w.commits.get(h)
	if err != nil {
		return err
	}
	n := &walkNode{hash: h, info: info, unint: unint, queued: true}
	w.nodes[h] = n
	heap.Push(&w.queue, n)
	if !unint {
		w.interesting++
	}
	return nil
}

func (w *objectWalk) markUnint(n *walkNode) {
	stack := []*walkNode{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x.unint {
			continue
		}
		x.unint = true
		if x.queued {
			w.interesting--
		}
		if x.done {
			for _, p := range x.info.parents {
				if pn := w.nodes[p]; pn != nil && !pn.unint {
					stack = append(stack, pn)
				}
			}
		}
	}
}

// limit walks until no queued commit is new to the client (git's limit_list).
func (w *objectWalk) limit() error {
	for w.interesting > 0 && w.queue.Len() > 0 {
		if err := w.step(); err != nil {
			return err
		}
		n := heap.Pop(&w.queue).(*walkNode)
		n.queued = false
		if !n.unint {
			w.interesting--
		}
		n.done = true
		w.order = append(w.order, n)
		for _, p := range n.info.parents {
			if err := w.push(p, n.unint); err != nil {
				return err
			}
		}
	}
	return nil
}

// tree adds the objects of tree h and its subtrees that the client lacks, or, with
// exclude, marks them all as the client's. Submodule commits are skipped.
func (w *objectWalk) tree(h plumbing.Hash, exclude bool) error {
	stack := []plumbing.Hash{h}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if w.exclude[t] || !exclude && w.added[t] {
			continue
		}
		if exclude {
			w.exclude[t] = true
		} else {
			w.add(t)
		}
		if err := w.step(); err != nil {
			return err
		}
		tree, err := object.GetTree(w.st, t)
		if err != nil {
			return fmt.Errorf("upload-pack: tree %s: %w", t, err)
		}
		for _, e := range tree.Entries {
			switch {
			case e.Mode == filemode.Submodule:
			case e.Mode == filemode.Dir:
				stack = append(stack, e.Hash)
			case exclude:
				w.exclude[e.Hash] = true
			case !w.exclude[e.Hash]:
				w.add(e.Hash)
			}
		}
	}
	return nil
}
