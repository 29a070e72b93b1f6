//! Introspection data (`org.freedesktop.DBus.Introspectable.Introspect`) of exported
//! objects: their interfaces, the standard ones every object has, and child nodes.

use std::fmt::Write as _;
use std::rc::Rc;

use crate::objects::Interface;

/// The XML document for an object with `interfaces` and `children`.
pub(crate) fn xml(interfaces: &[Rc<Interface>], children: &[String]) -> String {
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    xml.push_str(STANDARD_INTERFACES);
    for interface in interfaces {
        write_interface(&mut xml, interface);
    }
    for child in children {
        let _ = writeln!(xml, "  <node name=\"{child}\"/>");
    }
    xml.push_str("</node>\n");
    xml
}

const STANDARD_INTERFACES: &str = r#"  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg name="xml_data" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId"><arg name="machine_uuid" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get"><arg name="interface_name" type="s" direction="in"/><arg name="property_name" type="s" direction="in"/><arg name="value" type="v" direction="out"/></method>
    <method name="GetAll"><arg name="interface_name" type="s" direction="in"/><arg name="props" type="a{sv}" direction="out"/></method>
    <method name="Set"><arg name="interface_name" type="s" direction="in"/><arg name="property_name" type="s" direction="in"/><arg name="value" type="v" direction="in"/></method>
    <signal name="PropertiesChanged"><arg name="interface_name" type="s"/><arg name="changed_properties" type="a{sv}"/><arg name="invalidated_properties" type="as"/></signal>
  </interface>
"#;

fn write_interface(xml: &mut String, interface: &Interface) {
    let _ = writeln!(xml, "  <interface name=\"{}\">", interface.name);
    for (name, method) in &interface.methods {
        let _ = write!(xml, "    <method name=\"{name}\">");
        for (arg, sig) in &method.inputs {
            let _ = write!(xml, "<arg name=\"{arg}\" type=\"{sig}\" direction=\"in\"/>");
        }
        for (arg, sig) in &method.outputs {
            let _ = write!(
                xml,
                "<arg name=\"{arg}\" type=\"{sig}\" direction=\"out\"/>"
            );
        }
        xml.push_str("</method>\n");
    }
    for (name, args) in &interface.signals {
        let _ = write!(xml, "    <signal name=\"{name}\">");
        for (arg, sig) in args {
            let _ = write!(xml, "<arg name=\"{arg}\" type=\"{sig}\"/>");
        }
        xml.push_str("</signal>\n");
    }
    for (name, property) in &interface.properties {
        let access = if property.set.is_some() {
            "readwrite"
        } else {
            "read"
        };
        let _ = writeln!(
            xml,
            "    <property name=\"{name}\" type=\"{}\" access=\"{access}\"/>",
            property.signature
        );
    }
    xml.push_str("  </interface>\n");
}
