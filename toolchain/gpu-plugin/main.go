// tfbox-gpu-plugin: a stand-in NVIDIA device plugin for the Kubernetes test kit's real node (no GPUs).
//
// Why: tfbox maps `gpus` to the `nvidia.com/gpu` extended resource, and only a kubelet's device manager
// fed by a device plugin makes a node advertise it, allocate it to a container and drop it when a GPU is
// lost. This plays NVIDIA's k8s-device-plugin over the real kubelet device plugin API (v1beta1): it
// registers `nvidia.com/gpu` with the kubelet, advertises COUNT devices named like the stand-in
// nvidia-smi's GPU UUIDs, and on Allocate hands a container what NVIDIA's plugin (envvar strategy) and
// its container toolkit give it: NVIDIA_VISIBLE_DEVICES=<the allocated UUIDs> and `nvidia-smi` (here the
// stand-in script, mounted read-only at /usr/bin/nvidia-smi), which then lists exactly those GPUs.
//
// Control files in --state-dir, read every --poll (tests change them at runtime):
//
//	unhealthy   device UUIDs or indices, one a line: reported Unhealthy (allocatable drops, capacity stays)
//	no-smi      exists: Allocate hands out no nvidia-smi (a node whose driver/toolkit is broken)
//
// Registration: through the kubelet's plugin watcher (a socket in <kubelet root-dir>/plugins_registry), not
// the older Register call on /var/lib/kubelet/device-plugins/kubelet.sock: that path is fixed in the kubelet,
// whatever its --root-dir, so every kit kubelet on a host would share it. The watcher also finds the plugin
// again after a kubelet restart.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const resourceName = "nvidia.com/gpu"

// uuid is the stand-in nvidia-smi's UUID of host GPU i (scripts/nvidia/nvidia-smi: uuid()).
func uuid(i int) string { return fmt.Sprintf("GPU-b780f725-fe96-b196-3303-e4a68e6a68%02x", 0x60+i) }

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	count    int
	smi      string
	stateDir string

	mu      sync.Mutex
	devices []*pluginapi.Device
	changed chan struct{} // closed and replaced when devices change
}

// readState reads the control files: the devices with their health, and whether nvidia-smi is handed out.
func (p *plugin) readState() ([]*pluginapi.Device, bool) {
	bad := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(p.stateDir, "unhealthy")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			if i, err := strconv.Atoi(l); err == nil {
				l = uuid(i)
			}
			bad[l] = true
		}
	}
	devs := make([]*pluginapi.Device, p.count)
	for i := range devs {
		h := pluginapi.Healthy
		if bad[uuid(i)] {
			h = pluginapi.Unhealthy
		}
		devs[i] = &pluginapi.Device{ID: uuid(i), Health: h}
	}
	_, err := os.Stat(filepath.Join(p.stateDir, "no-smi"))
	return devs, err == nil
}

func (p *plugin) snapshot() ([]*pluginapi.Device, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.devices, p.changed
}

// poll updates the device list from the control files and wakes ListAndWatch when it changed.
func (p *plugin) poll() {
	devs, _ := p.readState()
	p.mu.Lock()
	defer p.mu.Unlock()
	if healthOf(devs) == healthOf(p.devices) {
		return
	}
	for _, d := range devs {
		log.Printf("device %s: %s", d.ID, d.Health)
	}
	p.devices = devs
	close(p.changed)
	p.changed = make(chan struct{})
}

// healthOf is the devices' ids and health as one string (protobuf messages do not compare with ==).
func healthOf(devs []*pluginapi.Device) string {
	var b strings.Builder
	for _, d := range devs {
		b.WriteString(d.ID + "=" + d.Health + " ")
	}
	return b.String()
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	for {
		devs, changed := p.snapshot()
		if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-s.Context().Done():
			return nil
		}
	}
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	_, noSmi := p.readState()
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		for _, id := range c.DevicesIds {
			known := false
			for i := 0; i < p.count; i++ {
				known = known || id == uuid(i)
			}
			if !known {
				return nil, fmt.Errorf("unknown device %q", id)
			}
		}
		car := &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(c.DevicesIds, ",")},
		}
		if !noSmi {
			car.Mounts = []*pluginapi.Mount{{ContainerPath: "/usr/bin/nvidia-smi", HostPath: p.smi, ReadOnly: true}}
		}
		log.Printf("allocate %v (nvidia-smi: %v)", c.DevicesIds, !noSmi)
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	return resp, nil
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// GetInfo answers the kubelet's plugin watcher: a device plugin for nvidia.com/gpu, served on this socket.
func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.DevicePlugin, Name: resourceName, SupportedVersions: []string{pluginapi.Version}}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		log.Printf("the kubelet registered %s (%d devices)", resourceName, r.count)
	} else {
		log.Printf("the kubelet refused the plugin: %s", s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

type registration struct {
	registerapi.UnimplementedRegistrationServer
	count int
}

func main() {
	dir := flag.String("registry-dir", "/var/lib/kubelet/plugins_registry", "the kubelet's plugin watcher directory (<root-dir>/plugins_registry)")
	count := flag.Int("count", 1, "how many GPUs to advertise")
	smi := flag.String("nvidia-smi", "", "the stand-in nvidia-smi to mount into containers (absolute path)")
	stateDir := flag.String("state-dir", "", "directory of the control files (unhealthy, no-smi)")
	every := flag.Duration("poll", time.Second, "how often the control files and the kubelet socket are read")
	flag.Parse()
	if *count < 1 || *count > 8 || !filepath.IsAbs(*smi) || *stateDir == "" {
		log.Fatal("usage: tfbox-gpu-plugin --count 1..8 --nvidia-smi /abs/path --state-dir DIR [--registry-dir DIR]")
	}
	if _, err := os.Stat(*smi); err != nil {
		log.Fatal(err)
	}
	p := &plugin{count: *count, smi: *smi, stateDir: *stateDir, changed: make(chan struct{})}
	p.devices, _ = p.readState()
	// One socket serves both the plugin watcher's Registration service and the DevicePlugin service.
	sock := filepath.Join(*dir, "tfbox-gpu.sock")
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	registerapi.RegisterRegistrationServer(srv, &registration{count: *count})
	go func() { _ = srv.Serve(l) }()
	log.Printf("serving %s on %s", resourceName, sock)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		p.poll()
		select {
		case <-sigs:
			// the socket goes first: the kubelet's watcher deregisters the plugin when it disappears
			_ = os.Remove(sock)
			srv.Stop()
			return
		case <-tick.C:
		}
	}
}
