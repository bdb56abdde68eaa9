"""Field provisioning: site file + device list -> per-device config and broker
credentials -> a flashed card's boot partition (or an image file) -> first boot."""
