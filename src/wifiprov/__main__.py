"""``wifiprov`` / ``python -m wifiprov``: the device agent without the CLI framework's weight."""

import sys


def main() -> None:
    if sys.argv[1:3] in (["device", "install"], ["device", "uninstall"]):
        from wifiprov.device.service import main as service_main

        sys.exit(service_main(sys.argv[2:]))
    if sys.argv[1:3] == ["device", "show"]:  # a device of the cloud, not the agent
        from wifiprov.provisioner.objects import device_show_main

        sys.exit(device_show_main(sys.argv[3:]))
    if len(sys.argv) > 1 and sys.argv[1] == "device":
        from wifiprov.device.cli import main as device_main

        sys.exit(device_main(sys.argv[2:]))
    from wifiprov.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
