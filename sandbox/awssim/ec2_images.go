package awssim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type xmlEBS struct {
	SnapshotID          string `xml:"snapshotId"`
	VolumeSize          int    `xml:"volumeSize"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType"`
	Encrypted           bool   `xml:"encrypted"`
	KMSKeyID            string `xml:"kmsKeyId,omitempty"`
}

type xmlBDM struct {
	DeviceName string `xml:"deviceName"`
	EBS        xmlEBS `xml:"ebs"`
}

type xmlImage struct {
	ImageID            string   `xml:"imageId"`
	ImageLocation      string   `xml:"imageLocation"`
	ImageState         string   `xml:"imageState"`
	ImageOwnerID       string   `xml:"imageOwnerId"`
	CreationDate       string   `xml:"creationDate"`
	IsPublic           bool     `xml:"isPublic"`
	Architecture       string   `xml:"architecture"`
	ImageType          string   `xml:"imageType"`
	Name               string   `xml:"name"`
	Description        string   `xml:"description,omitempty"`
	RootDeviceType     string   `xml:"rootDeviceType"`
	RootDeviceName     string   `xml:"rootDeviceName"`
	BlockDeviceMapping []xmlBDM `xml:"blockDeviceMapping>item"`
	VirtualizationType string   `xml:"virtualizationType"`
	Hypervisor         string   `xml:"hypervisor"`
	EnaSupport         bool     `xml:"enaSupport"`
	PlatformDetails    string   `xml:"platformDetails"`
	UsageOperation     string   `xml:"usageOperation"`
	SourceImageID      string   `xml:"sourceImageId,omitempty"`
	SourceImageRegion  string   `xml:"sourceImageRegion,omitempty"`
	TagSet             []xmlTag `xml:"tagSet>item,omitempty"`
}

func (s *Server) imageXML(im *image) xmlImage {
	return xmlImage{
		ImageID: im.id, ImageLocation: im.owner + "/" + im.name, ImageState: im.state(s.now()),
		ImageOwnerID: im.owner, CreationDate: ts(im.created), IsPublic: im.public,
		Architecture: "x86_64", ImageType: "machine", Name: im.name, Description: im.description,
		RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		BlockDeviceMapping: []xmlBDM{{DeviceName: "/dev/xvda", EBS: xmlEBS{
			SnapshotID: im.snapshotID, VolumeSize: im.sizeGiB, DeleteOnTermination: true,
			VolumeType: "gp3", Encrypted: im.encrypted, KMSKeyID: im.kmsKeyID,
		}}},
		VirtualizationType: "hvm", Hypervisor: "xen", EnaSupport: true,
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
		SourceImageID: im.sourceImage, SourceImageRegion: im.sourceRegion,
		TagSet: tagSet(im.tags),
	}
}

func notFoundAMI(ids ...string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidAMIID.NotFound",
		fmt.Sprintf("The image id '[%s]' does not exist", strings.Join(ids, ", "))}
}

func checkAMIID(id string) *apiError {
	if !amiIDRE.MatchString(id) {
		return &apiError{http.StatusBadRequest, "InvalidAMIID.Malformed",
			fmt.Sprintf("Invalid id: \"%s\" (expecting \"ami-...\")", id)}
	}
	return nil
}

// lookupImage finds an image by id in the request's region.
func (s *Server) lookupImage(region, id string) (*image, *apiError) {
	if id == "" {
		return nil, missing("ImageId")
	}
	if e := checkAMIID(id); e != nil {
		return nil, e
	}
	im, ok := s.ec2[region].images[id]
	if !ok {
		return nil, notFoundAMI(id)
	}
	return im, nil
}

func (s *Server) canLaunch(im *image, account string) bool {
	return im.owner == account || im.public || im.launchUsers[account]
}

func (s *Server) describeImages(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	ids := q.form.list("ImageId")
	owners := q.form.list("Owner")
	execBy := q.form.list("ExecutableBy")
	filters := q.form.filters()
	var missingIDs []string
	for _, id := range ids {
		if e := checkAMIID(id); e != nil {
			return nil, e
		}
		if _, ok := rg.images[id]; !ok {
			missingIDs = append(missingIDs, id)
		}
	}
	if len(missingIDs) > 0 {
		return nil, notFoundAMI(missingIDs...)
	}
	var out []xmlImage
	for _, id := range sortedKeys(rg.images) {
		im := rg.images[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		if len(owners) > 0 && !ownerMatch(owners, im.owner, s.opts.Account) {
			continue
		}
		if len(execBy) > 0 && !s.execMatch(execBy, im) {
			continue
		}
		ok, e := s.imageFilters(filters, im)
		if e != nil {
			return nil, e
		}
		if ok {
			out = append(out, s.imageXML(im))
		}
	}
	return resp(q, struct {
		Images []xmlImage `xml:"imagesSet>item"`
	}{out}), nil
}

func ownerMatch(owners []string, owner, account string) bool {
	for _, o := range owners {
		if o == owner || (o == "self" && owner == account) {
			return true
		}
	}
	return false
}

func (s *Server) execMatch(execBy []string, im *image) bool {
	for _, e := range execBy {
		switch e {
		case "self":
			if s.canLaunch(im, s.opts.Account) {
				return true
			}
		case "all":
			if im.public {
				return true
			}
		default:
			if im.public || im.launchUsers[e] || im.owner == e {
				return true
			}
		}
	}
	return false
}

func (s *Server) imageFilters(filters []filter, im *image) (bool, *apiError) {
	for _, f := range filters {
		if ok, handled := tagFilter(f, im.tags); handled {
			if !ok {
				return false, nil
			}
			continue
		}
		var v string
		switch f.name {
		case "state":
			v = im.state(s.now())
		case "name":
			v = im.name
		case "image-id":
			v = im.id
		case "owner-id":
			v = im.owner
		case "description":
			v = im.description
		case "is-public":
			v = strconv.FormatBool(im.public)
		case "block-device-mapping.snapshot-id":
			v = im.snapshotID
		case "block-device-mapping.encrypted":
			v = strconv.FormatBool(im.encrypted)
		case "image-type":
			v = "machine"
		case "architecture":
			v = "x86_64"
		default:
			return false, badParam("The filter '%s' is invalid", f.name)
		}
		if !anyMatch(f.values, v) {
			return false, nil
		}
	}
	return true, nil
}

func (s *Server) checkName(rg *ec2Region, name string) *apiError {
	if name == "" {
		return missing("Name")
	}
	if len(name) < 3 || len(name) > 128 {
		return badParam("AMI names must be between 3 and 128 characters long, got %q", name)
	}
	for _, im := range rg.images {
		if im.name == name && im.owner == s.opts.Account {
			return &apiError{http.StatusBadRequest, "InvalidAMIName.Duplicate",
				fmt.Sprintf("AMI name %s is already in use by AMI %s", name, im.id)}
		}
	}
	return nil
}

// newImage registers an image and its snapshot; pending for the copy time of its size.
func (s *Server) newImage(rg *ec2Region, name, desc string, sizeGiB int, encrypted bool, kms string, tags map[string]string) *image {
	now := s.now()
	done := now.Add(time.Duration(sizeGiB) * s.opts.CopyTimePerGiB)
	im := &image{
		id: newAMIID(), name: name, description: desc, owner: s.opts.Account,
		created: now, availableAt: done, sizeGiB: sizeGiB, encrypted: encrypted, kmsKeyID: kms,
		tags: tags, launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{},
	}
	if im.tags == nil {
		im.tags = map[string]string{}
	}
	sn := &snapshot{
		id: newSnapshotID(), description: fmt.Sprintf("Created by CreateImage for %s", im.id),
		owner: s.opts.Account, volumeID: newVolumeID(), started: now, completeAt: done,
		sizeGiB: sizeGiB, encrypted: encrypted, kmsKeyID: kms, tags: map[string]string{},
		volumeUsers: map[string]bool{},
	}
	im.snapshotID = sn.id
	rg.images[im.id] = im
	rg.snapshots[sn.id] = sn
	return im
}

func (s *Server) createImage(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	iid := q.form.get("InstanceId")
	if iid == "" {
		return nil, missing("InstanceId")
	}
	in, e := s.lookupInstance(rg, iid)
	if e != nil {
		return nil, e
	}
	if _, st := in.state(s.now()); st == "terminated" {
		return nil, &apiError{http.StatusBadRequest, "IncorrectInstanceState",
			fmt.Sprintf("The instance '%s' is not in a state from which it can be imaged.", iid)}
	}
	name := q.form.get("Name")
	if e := s.checkName(rg, name); e != nil {
		return nil, e
	}
	src := rg.images[in.imageID]
	enc, kms := false, ""
	if src != nil {
		enc, kms = src.encrypted, src.kmsKeyID
	}
	im := s.newImage(rg, name, q.form.get("Description"), in.sizeGiB, enc, kms, q.form.tagSpecs("image"))
	q.call.IDs = []string{im.id, im.snapshotID}
	return resp(q, struct {
		ImageID string `xml:"imageId"`
	}{im.id}), nil
}

func (s *Server) copyImage(q *req) (any, *apiError) {
	dst := s.ec2[q.region]
	srcRegion, srcID := q.form.get("SourceRegion"), q.form.get("SourceImageId")
	token := q.form.get("ClientToken")
	q.call.ClientToken = token
	if srcRegion == "" {
		return nil, missing("SourceRegion")
	}
	if srcID == "" {
		return nil, missing("SourceImageId")
	}
	// Idempotency comes first, as in EC2: a retried request with the same token gets the
	// first answer even if the source has since changed.
	if token != "" {
		if id, ok := dst.copyTokens[token]; ok {
			if im, ok := dst.images[id]; ok && (im.sourceImage != srcID || im.sourceRegion != srcRegion) {
				return nil, &apiError{http.StatusBadRequest, "IdempotentParameterMismatch",
					fmt.Sprintf("Client token %s was already used for a different CopyImage request", token)}
			}
			q.call.Replay = true
			q.call.IDs = []string{id}
			return resp(q, struct {
				ImageID string `xml:"imageId"`
			}{id}), nil
		}
	}
	src, ok := s.ec2[srcRegion]
	if !ok {
		return nil, badParam("Invalid source region: %s", srcRegion)
	}
	if e := checkAMIID(srcID); e != nil {
		return nil, e
	}
	sim, ok := src.images[srcID]
	if !ok {
		return nil, notFoundAMI(srcID)
	}
	if sim.state(s.now()) != "available" {
		return nil, &apiError{http.StatusBadRequest, "IncorrectState",
			fmt.Sprintf("Image %s is not in a valid state for copying: %s", srcID, sim.state(s.now()))}
	}
	name := q.form.get("Name")
	if name == "" {
		name = sim.name
	}
	if e := s.checkName(dst, name); e != nil {
		return nil, e
	}
	encrypted := q.form.boolean("Encrypted") || sim.encrypted
	kms := q.form.get("KmsKeyId")
	if kms != "" && !q.form.boolean("Encrypted") {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterCombination",
			"KmsKeyId requires Encrypted to be true"}
	}
	if encrypted {
		if kms == "" {
			kms = "alias/aws/ebs"
		}
		if !dst.kmsKeys[kms] {
			return nil, badParam("Value (%s) for parameter kmsKeyId is invalid. The KMS key does not exist in region %s.", kms, q.region)
		}
	}
	if s.opts.Limits {
		if e := s.copyLimits(q.region, srcRegion); e != nil {
			return nil, e
		}
	}
	var tags map[string]string
	if q.form.boolean("CopyImageTags") {
		tags = map[string]string{}
		for k, v := range sim.tags {
			tags[k] = v
		}
	}
	for k, v := range q.form.tagSpecs("image") {
		if tags == nil {
			tags = map[string]string{}
		}
		tags[k] = v
	}
	desc := q.form.get("Description")
	if desc == "" {
		desc = sim.description
	}
	im := s.newImage(dst, name, desc, sim.sizeGiB, encrypted, kmsValue(encrypted, kms), tags)
	im.sourceImage, im.sourceRegion = srcID, srcRegion
	dst.snapshots[im.snapshotID].description = fmt.Sprintf("Copied for DestinationAmi %s from SourceAmi %s for SourceSnapshot %s.", im.id, srcID, sim.snapshotID)
	if token != "" {
		dst.copyTokens[token] = im.id
	}
	q.call.IDs = []string{im.id, im.snapshotID}
	s.log.Info("copy image", "source", srcRegion+"/"+srcID, "region", q.region, "image", im.id, "available_at", im.availableAt)
	return resp(q, struct {
		ImageID string `xml:"imageId"`
	}{im.id}), nil
}

func kmsValue(encrypted bool, kms string) string {
	if !encrypted {
		return ""
	}
	return kms
}

// copyLimits applies EC2's concurrent copy quotas: 50 pending copies into a destination
// region and 25 out of one source region.
func (s *Server) copyLimits(dstRegion, srcRegion string) *apiError {
	now := s.now()
	into, from := 0, 0
	for rname, rg := range s.ec2 {
		for _, im := range rg.images {
			if im.sourceRegion == "" || im.state(now) != "pending" {
				continue
			}
			if rname == dstRegion {
				into++
			}
			if im.sourceRegion == srcRegion {
				from++
			}
		}
	}
	if into >= 50 {
		return errCopyLimit(fmt.Sprintf("You have reached the limit of 50 concurrent AMI copies into region %s", dstRegion))
	}
	if from >= 25 {
		return errCopyLimit(fmt.Sprintf("You have reached the limit of 25 concurrent AMI copies from region %s", srcRegion))
	}
	return nil
}

func (s *Server) deregisterImage(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	im, e := s.lookupImage(q.region, q.form.get("ImageId"))
	if e != nil {
		return nil, e
	}
	q.call.IDs = []string{im.id}
	delete(rg.images, im.id)
	return resp(q, returnTrue{true}), nil
}

type xmlLaunchPerm struct {
	UserID                string `xml:"userId,omitempty"`
	Group                 string `xml:"group,omitempty"`
	OrganizationArn       string `xml:"organizationArn,omitempty"`
	OrganizationalUnitArn string `xml:"organizationalUnitArn,omitempty"`
}

type xmlValue struct {
	Value string `xml:"value"`
}

func (s *Server) describeImageAttribute(q *req) (any, *apiError) {
	im, e := s.lookupImage(q.region, q.form.get("ImageId"))
	if e != nil {
		return nil, e
	}
	attr := q.form.get("Attribute")
	switch attr {
	case "launchPermission":
		var perms []xmlLaunchPerm
		if im.public {
			perms = append(perms, xmlLaunchPerm{Group: "all"})
		}
		for _, u := range sortedKeys(im.launchUsers) {
			perms = append(perms, xmlLaunchPerm{UserID: u})
		}
		for _, o := range sortedKeys(im.launchOrgs) {
			perms = append(perms, xmlLaunchPerm{OrganizationArn: o})
		}
		for _, o := range sortedKeys(im.launchOUs) {
			perms = append(perms, xmlLaunchPerm{OrganizationalUnitArn: o})
		}
		return resp(q, struct {
			ImageID string          `xml:"imageId"`
			Perms   []xmlLaunchPerm `xml:"launchPermission>item"`
		}{im.id, perms}), nil
	case "description":
		return resp(q, struct {
			ImageID     string   `xml:"imageId"`
			Description xmlValue `xml:"description"`
		}{im.id, xmlValue{im.description}}), nil
	case "":
		return nil, missing("Attribute")
	default:
		return nil, badParam("Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
}

func (s *Server) modifyImageAttribute(q *req) (any, *apiError) {
	im, e := s.lookupImage(q.region, q.form.get("ImageId"))
	if e != nil {
		return nil, e
	}
	q.call.IDs = []string{im.id}
	type change struct {
		add  bool
		perm map[string]string
	}
	var changes []change
	for _, m := range q.form.structs("LaunchPermission.Add") {
		changes = append(changes, change{true, m})
	}
	for _, m := range q.form.structs("LaunchPermission.Remove") {
		changes = append(changes, change{false, m})
	}
	// The older flat form: Attribute=launchPermission&OperationType=add&UserId.1=...
	if op := q.form.get("OperationType"); op != "" {
		add := op == "add"
		if !add && op != "remove" {
			return nil, badParam("Value (%s) for parameter operationType is invalid", op)
		}
		for _, u := range q.form.list("UserId") {
			changes = append(changes, change{add, map[string]string{"UserId": u}})
		}
		for _, g := range q.form.list("UserGroup") {
			changes = append(changes, change{add, map[string]string{"Group": g}})
		}
		for _, o := range q.form.list("OrganizationArn") {
			changes = append(changes, change{add, map[string]string{"OrganizationArn": o}})
		}
		for _, o := range q.form.list("OrganizationalUnitArn") {
			changes = append(changes, change{add, map[string]string{"OrganizationalUnitArn": o}})
		}
	}
	if d := q.form.get("Description.Value"); d != "" {
		im.description = d
		return resp(q, returnTrue{true}), nil
	}
	if len(changes) == 0 {
		return nil, missing("LaunchPermission")
	}
	// Validate everything first so a bad entry changes nothing.
	for _, c := range changes {
		if u, ok := c.perm["UserId"]; ok && !accountIDRE.MatchString(u) {
			return nil, &apiError{http.StatusBadRequest, "InvalidAMIAttributeItemValue",
				fmt.Sprintf("Invalid attribute item value \"%s\" for userId item type.", u)}
		}
		if g, ok := c.perm["Group"]; ok && g != "all" {
			return nil, &apiError{http.StatusBadRequest, "InvalidAMIAttributeItemValue",
				fmt.Sprintf("Invalid attribute item value \"%s\" for group item type.", g)}
		}
		if o, ok := c.perm["OrganizationArn"]; ok && !strings.HasPrefix(o, "arn:aws:organizations::") {
			return nil, badParam("Invalid organization ARN %s", o)
		}
		if o, ok := c.perm["OrganizationalUnitArn"]; ok && !strings.HasPrefix(o, "arn:aws:organizations::") {
			return nil, badParam("Invalid organizational unit ARN %s", o)
		}
	}
	set := func(m map[string]bool, k string, add bool) {
		if add {
			m[k] = true
		} else {
			delete(m, k)
		}
	}
	for _, c := range changes {
		if u, ok := c.perm["UserId"]; ok {
			set(im.launchUsers, u, c.add)
		}
		if _, ok := c.perm["Group"]; ok {
			im.public = c.add
		}
		if o, ok := c.perm["OrganizationArn"]; ok {
			set(im.launchOrgs, o, c.add)
		}
		if o, ok := c.perm["OrganizationalUnitArn"]; ok {
			set(im.launchOUs, o, c.add)
		}
	}
	return resp(q, returnTrue{true}), nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
